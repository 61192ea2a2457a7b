"""Throttling of the admin login: after ADMIN_LOGIN_FAILURES failed attempts for a username, or
from a client address, within ADMIN_LOGIN_WINDOW_MINUTES, further attempts are refused with a
clear message until the window ends, without even checking the password (so guessing on stays
useless). Counted in the cache, which Redis shares between servers in production.

Both keys count: per username stops a slow guess at one account from many addresses, per
address stops one machine trying many accounts. A successful login clears its username's count.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from elicit import ratelimit


def _keys(username: str, address: str) -> list[str]:
    # Hashed: the cache should not hold what people typed as a username.
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login:u:{digest}", f"login:a:{address}"]


class ThrottledLoginForm(AdminAuthenticationForm):
    def clean(self):
        window = settings.ADMIN_LOGIN_WINDOW_MINUTES * 60
        keys = _keys(self.data.get("username", ""), ratelimit.client_address(self.request))
        if any(
            ratelimit.count(key, window_seconds=window) >= settings.ADMIN_LOGIN_FAILURES
            for key in keys
        ):
            minutes = -(-ratelimit.seconds_left(window) // 60)
            raise ValidationError(
                _(
                    "Too many failed login attempts. For your account's safety, please try "
                    "again in %(minutes)d minutes."
                )
                % {"minutes": minutes},
                code="throttled",
            )
        try:
            return super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                for key in keys:
                    ratelimit.hit(key, window_seconds=window)
            raise

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        username_key = _keys(self.data.get("username", ""), "")[0]
        ratelimit.reset(username_key, window_seconds=settings.ADMIN_LOGIN_WINDOW_MINUTES * 60)

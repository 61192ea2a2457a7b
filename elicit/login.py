"""Throttling of staff logins: after ADMIN_LOGIN_FAILURES failed attempts for a username, or from
a client address, within ADMIN_LOGIN_WINDOW_MINUTES, further attempts are refused until the
window ends, without even checking the password (so guessing on stays useless). Counted in the
cache, which Redis shares between servers in production.

Both keys count: per username stops a slow guess at one account from many addresses, per
address stops one machine trying many accounts. A successful login clears its username's count.

Enforced by an authentication backend placed first (settings.AUTHENTICATION_BACKENDS), so that
every login page is covered, whatever form it uses; the forms below add the clear message.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

from elicit import ratelimit

THROTTLED = "_login_throttled"  # set on the request when an attempt was refused unchecked


def _window() -> int:
    return settings.ADMIN_LOGIN_WINDOW_MINUTES * 60


def _username_key(username: str) -> str:
    # Hashed: the cache should not hold what people typed as a username.
    return "login:u:" + hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def _keys(request, username: str) -> list[str]:
    return [_username_key(username), f"login:a:{ratelimit.client_address(request)}"]


def throttled(request, username: str) -> bool:
    return any(
        ratelimit.count(key, window_seconds=_window()) >= settings.ADMIN_LOGIN_FAILURES
        for key in _keys(request, username)
    )


class ThrottleBackend:
    """Authenticates nobody: refuses outright (PermissionDenied stops the other backends) while
    the username or the address is throttled, and otherwise lets the next backend decide. No
    `get_user` on purpose: sessions (and tests' force_login) must name the backend that did
    authenticate."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and throttled(request, username or ""):
            setattr(request, THROTTLED, True)
            raise PermissionDenied
        return None


def count_failure(sender, credentials, request=None, **kwargs) -> None:
    if request is None or getattr(request, THROTTLED, False):
        return
    for key in _keys(request, str(credentials.get("username") or "")):
        ratelimit.hit(key, window_seconds=_window())


def clear_username(sender, request, user, **kwargs) -> None:
    ratelimit.reset(_username_key(user.get_username()), window_seconds=_window())


user_login_failed.connect(count_failure, dispatch_uid="elicit.login.count_failure")
user_logged_in.connect(clear_username, dispatch_uid="elicit.login.clear_username")


class ThrottledLoginMixin:
    """Say plainly that logins are throttled, and for how long, instead of "wrong password"."""

    def clean(self):
        try:
            return super().clean()  # type: ignore[misc]
        except ValidationError:
            if getattr(self.request, THROTTLED, False):  # type: ignore[attr-defined]
                minutes = -(-ratelimit.seconds_left(_window()) // 60)
                raise ValidationError(
                    _(
                        "Too many failed login attempts. For your account's safety, please try "
                        "again in %(minutes)d minutes."
                    )
                    % {"minutes": minutes},
                    code="throttled",
                ) from None
            raise


class ThrottledAdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class ThrottledLoginForm(ThrottledLoginMixin, AuthenticationForm):
    """For staff login pages outside the admin (LoginView's `authentication_form`)."""

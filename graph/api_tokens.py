"""Read-only API tokens for researchers' scripts (`Authorization: Bearer mge_...`).

A token acts as its user, on the export endpoints only: each request still asks whether that
user may research the deliberation. Only a hash of the token is stored; the clear text is shown
once, when it is created. A revoked token, an unknown one, or one whose user was deactivated,
is refused.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from graph.models import ApiToken

PREFIX = "mge_"


class InvalidToken(Exception):
    """The Authorization header names a token that is malformed, unknown or revoked."""


def bearer_token(authorization: str) -> str | None:
    """The token in an ``Authorization: Bearer ...`` header; None when there is no header.
    Raises `InvalidToken` for any other scheme or a token without our prefix."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(PREFIX):
        raise InvalidToken
    return token


def authenticate(authorization: str):
    """The user a request's Authorization header stands for (None without the header), and the
    token's last use recorded. Raises `InvalidToken`."""
    token = bearer_token(authorization)
    if token is None:
        return None
    found = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=ApiToken.hash(token), revoked_at__isnull=True)
        .first()
    )
    if found is None or not found.user.is_active:
        raise InvalidToken
    ApiToken.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
    return found.user


def create_token(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for *user*; the clear text is returned once."""
    return ApiToken.issue(user=user, name=name)


@transaction.atomic
def revoke_token(*, user, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when there is no such live token."""
    return bool(
        ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )

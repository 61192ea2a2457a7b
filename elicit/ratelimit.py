"""Rate limits on the cache (Redis in production, so shared by all servers).

Fixed windows: a counter per key and window, which is cheap, needs no clean-up and is good
enough to stop floods (a burst at a window's edge can reach twice the limit, no more).

Every participant write (a form post, a websocket frame) counts once against the participant
and once against the client address; joining also counts against the address per hour, since
each join creates a participant. The limits are settings (RATE_LIMIT_*). A limited form post
answers 429 with a page that keeps what the person entered and sends it again with one click;
an htmx request gets a short notice swapped into the page, leaving its form as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.shortcuts import render
from django.utils.translation import gettext as _

MINUTE, HOUR = 60, 3600


def now() -> float:
    return time.time()


def _bucket(key: str, window_seconds: int) -> str:
    return f"rl:{key}:{int(now() // window_seconds)}"


def hit(key: str, *, window_seconds: int = MINUTE) -> int:
    """Count one hit for `key` in the current window; returns the count so far."""
    return hits((key, window_seconds))[0]


def hits(*keys: tuple[str, int]) -> list[int]:
    """Count one hit for each (key, window in seconds); returns the counts so far. On Redis, one
    round trip for all of them (a request counts against two or three keys, and at hundreds of
    requests a second the round trips added up), each counter created with its expiry and
    advanced in one transaction."""
    buckets = [(_bucket(key, window), window + 5) for key, window in keys]
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        pipe = _redis_client(backend).pipeline()
        for bucket, timeout in buckets:
            name = backend.make_and_validate_key(bucket)
            pipe.set(name, 0, ex=timeout, nx=True)
            pipe.incr(name)
        return [int(count) for count in pipe.execute()[1::2]]
    counts = []
    for bucket, timeout in buckets:
        cache.add(bucket, 0, timeout=timeout)
        try:
            counts.append(cache.incr(bucket))
        except ValueError:  # expired between add and incr
            cache.set(bucket, 1, timeout=timeout)
            counts.append(1)
    return counts


# Redis clients (each with its pool of connections) shared by the whole process. Django's
# cache handler gives every async context its own backend, so each websocket would otherwise
# open a Redis connection of its own for its first counted write.
_redis_clients: dict[tuple, Any] = {}


def _redis_client(backend: RedisCache) -> Any:
    key = (tuple(backend._servers), repr(sorted(backend._options.items())))
    client = _redis_clients.get(key)
    if client is None:
        client = _redis_clients.setdefault(key, backend._cache.get_client(write=True))
    return client


def count(key: str, *, window_seconds: int = MINUTE) -> int:
    """Hits of `key` in the current window, without counting one."""
    return int(cache.get(_bucket(key, window_seconds)) or 0)


def reset(key: str, *, window_seconds: int = MINUTE) -> None:
    cache.delete(_bucket(key, window_seconds))


def allow(key: str, *, limit: int, window_seconds: int = MINUTE) -> bool:
    """Count one hit for `key` in the current window; False once `limit` is exceeded."""
    return hit(key, window_seconds=window_seconds) <= limit


def seconds_left(window_seconds: int) -> int:
    """Until the current window ends: when a limited person may try again."""
    return max(1, int(window_seconds - now() % window_seconds))


# --- Client addresses ---------------------------------------------------------------------------


def forwarded_address(remote: str, forwarded_for: str | None) -> str:
    """The client's address. Behind TRUSTED_PROXY_COUNT reverse proxies that each append the
    address they received the request from to X-Forwarded-For, the client is that many hops from
    the right; anything further left was written by the client and cannot be trusted. With no
    trusted proxy (the default) the header is ignored, so nobody can spoof their address."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0 or not forwarded_for:
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if len(hops) < proxies:  # not written by all the proxies: misconfigured, do not trust it
        return remote
    return hops[-proxies]


def client_address(request) -> str:
    return forwarded_address(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR")
    )


def scope_address(scope: dict) -> str:
    """The same for a websocket's ASGI scope."""
    client = scope.get("client") or ("", 0)
    forwarded = None
    for name, value in scope.get("headers") or []:
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return forwarded_address(str(client[0]), forwarded)


# --- Participant writes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Limited:
    """A write refused for going too fast, and when to try again."""

    retry_after: int

    @property
    def message(self) -> str:
        return _(
            "You are going very fast. Please wait %(seconds)d seconds and try again; "
            "nothing you entered is lost."
        ) % {"seconds": self.retry_after}


Key = tuple[str, int, int]  # (counter, window in seconds, limit)


def write_keys(*, participant_id: int | None, address: str, join: bool = False) -> list[Key]:
    """The counters one participant write advances, each with its window and limit."""
    keys = []
    if participant_id is not None:
        keys.append((f"w:p:{participant_id}", MINUTE, settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE))
    if address:
        keys.append((f"w:a:{address}", MINUTE, settings.RATE_LIMIT_ADDRESS_PER_MINUTE))
        if join:
            keys.append((f"join:a:{address}", HOUR, settings.RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR))
    return keys


def count_all(*groups: list[Key]) -> list[Limited | None]:
    """Advance every counter of every group in one round trip; for each group, a `Limited`
    when one of its counters went over its limit, else None."""
    counts = iter(hits(*((key, window) for group in groups for key, window, _limit in group)))
    verdicts = []
    for group in groups:
        over = [window for (_key, window, limit) in group if next(counts) > limit]
        verdicts.append(Limited(seconds_left(max(over))) if over else None)
    return verdicts


def check_write(*, participant_id: int | None, address: str, join: bool = False) -> Limited | None:
    """Count one participant write; a `Limited` when the participant or the address went over
    its limit. Every counter is advanced, so that a flood cannot dodge one key with another."""
    return count_all(write_keys(participant_id=participant_id, address=address, join=join))[0]


def session_participant_id(request, kwargs: dict) -> int | None:
    """The participant making the request: by their personal link (`token`), else the one the
    session holds for the deliberation of the URL (`slug`). None before joining."""
    from elicit.models import Participant
    from elicit.services import SESSION_KEY, request_deliberation

    if kwargs.get("token"):
        return (
            Participant.objects.filter(receipt_token=kwargs["token"])
            .values_list("pk", flat=True)
            .first()
        )
    known = request.session.get(SESSION_KEY) or {}
    if not known or not kwargs.get("slug"):
        return None
    deliberation = request_deliberation(request, kwargs["slug"])
    return known.get(str(deliberation.pk)) if deliberation is not None else None


def rate_limited(
    view: Callable | None = None, *, join: bool = False, methods: tuple[str, ...] = ("POST",)
):
    """Decorate a participant write view: over the limit, it answers 429 instead of running.
    `join=True` for the view that creates participants; `methods` for views that write on
    other methods than POST (a download counts as a write: it is the costliest read)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method in methods:
                limited = check_write(
                    participant_id=None if join else session_participant_id(request, kwargs),
                    address=client_address(request),
                    join=join,
                )
                if limited is not None:
                    return limited_response(request, limited)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def limited_response(request, limited: Limited):
    """429. An htmx request gets the notice alone, swapped into the page's notice area (its form
    keeps what was typed); a plain post gets a page holding the posted fields, to send again."""
    context = {
        "limited": limited,
        "fields": [
            (name, value)
            for name, values in request.POST.lists()
            if name != "csrfmiddlewaretoken"
            for value in values
        ],
        "action": request.get_full_path(),
    }
    if getattr(request, "htmx", False):
        response = render(request, "ratelimited.html#notice", context, status=429)
        response["HX-Retarget"] = "#notices"
        response["HX-Reswap"] = "innerHTML"
    else:
        response = render(request, "ratelimited.html", context, status=429)
    response["Retry-After"] = str(limited.retry_after)
    return response

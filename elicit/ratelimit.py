"""Fixed-window rate limits on the cache (Redis in production, so shared by all servers)."""

from __future__ import annotations

import time

from django.core.cache import cache


def now() -> float:
    return time.time()


def allow(key: str, *, limit: int, window_seconds: int = 60) -> bool:
    """Count one hit for `key` in the current window; False once `limit` is exceeded."""
    bucket = f"rl:{key}:{int(now() // window_seconds)}"
    cache.add(bucket, 0, timeout=window_seconds + 5)
    try:
        count = cache.incr(bucket)
    except ValueError:  # expired between add and incr
        cache.set(bucket, 1, timeout=window_seconds + 5)
        count = 1
    return count <= limit

"""Shared fixtures. Celery runs tasks eagerly in unit tests only; the tests that prove a real
worker consumes the queue start one (tests/test_celery_worker.py)."""

import pytest
from django.core.cache import cache

from config.celery import app as celery_app


@pytest.fixture(autouse=True)
def _eager_celery():
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached pages must not leak from one test into the next."""
    cache.clear()
    yield

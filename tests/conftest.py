"""Shared fixtures. Celery runs tasks eagerly in unit tests only; the tests that prove a real
worker consumes the queue start one (tests/test_celery_worker.py)."""

import pytest
from asgiref.sync import SyncToAsync
from celery._state import _set_task_join_will_block
from django.core.cache import cache
from django.db import connections

from config.celery import app as celery_app


@pytest.fixture(autouse=True)
def _eager_celery():
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False
    # An eager call marks "joining a result would block" in a process-wide flag and restores the
    # value it found; two threads applying eagerly at once (the interview's database calls run
    # in a thread pool on PostgreSQL) can restore each other's "blocked", leaving it set for
    # good, and a later test's own result.get() then fails "Never call result.get() within a
    # task!" (seen in CI). No task runs between tests: nothing is being joined.
    _set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached pages must not leak from one test into the next."""
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _close_the_shared_threads_connection():
    """An async test's `sync_to_async` calls (thread-sensitive, outside any request) run in
    asgiref's one shared thread, whose database connection nothing closes: it stayed open to the
    end, and on PostgreSQL the test database could then not be dropped ("being accessed by other
    users", seen in CI). Close it after each test that used that thread."""
    yield
    executor = SyncToAsync.single_thread_executor
    if executor._threads:  # the thread exists: some test has used it
        executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture
def llm(settings):
    """The fake OpenAI-compatible server, with the application configured to use it."""
    from tests.fakellm import FakeLLM

    with FakeLLM() as fake:
        settings.LLM_ENABLED = True
        settings.LLM_BASE_URL = fake.base_url
        settings.LLM_API_KEY = "test-key"
        settings.LLM_MODEL = "fake-model"
        settings.LLM_MAX_RETRIES = 2
        settings.LLM_TIMEOUT = 5.0
        settings.MODERATION_BACKEND = "auto"
        yield fake


@pytest.fixture
def no_llm(settings):
    settings.LLM_ENABLED = False
    settings.LLM_BASE_URL = ""
    settings.LLM_API_KEY = ""

"""An optional read replica for the research area.

When DATABASE_REPLICA_URL is set, reads made while serving the research area (GET and HEAD
under /research/: dashboards, the explorer, exports and downloads, which read a lot and can
stand a second of replication lag) go to the replica, and everything else, every write
included, to the primary. Code elsewhere (a long export in a task, say) can opt in with
`with replica_reads(): ...`. Without a replica, the router is not installed at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.conf import settings

REPLICA = "replica"
_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Within this block, ORM reads go to the replica (when one is configured)."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        if _reading_from_replica.get() and replica_configured():
            return REPLICA
        return None  # the primary

    def db_for_write(self, model, **hints) -> str | None:
        return None  # always the primary

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        return db != REPLICA  # the replica gets its schema by replication


class ResearchReplicaMiddleware:
    """Serve the research area's reads from the replica (GET and HEAD only: a form posted there
    writes, and must read what it writes)."""

    prefix = "/research/"

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.method in {"GET", "HEAD"} and request.path.startswith(self.prefix):
            with replica_reads():
                return self.get_response(request)
        return self.get_response(request)

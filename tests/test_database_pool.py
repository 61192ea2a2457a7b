"""PostgreSQL's connection pool (config/postgresql): a connection it hands out works, and
handing it out costs no round trip to the database."""

import contextlib
import time

import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" or not connection.settings_dict["OPTIONS"].get("pool"),
    reason="PostgreSQL's pool only",
)


@pytest.fixture
def pool(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        connection.pool.open()  # as Django does when it first takes a connection
        yield connection.pool


def backend_pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


@contextlib.contextmanager
def taking(pool):
    """`take()` takes a connection from the pool; every one taken goes back at the end."""
    held = []

    def take():
        held.append(pool.getconn(timeout=5))
        return held[-1]

    try:
        yield take
    finally:
        for conn in held:
            pool.putconn(conn)


def test_a_connection_is_handed_out_again_without_a_query_to_check_it(pool):
    conn = pool.getconn()
    pid = backend_pid(conn)
    conn.execute("SELECT 'the last query of the request'")
    pool.putconn(conn)

    with taking(pool) as take:
        # Until it comes back (the pool hands its connections out in turn).
        again = next((c for c in (take() for _ in range(pool.max_size)) if c is conn), None)
        assert again is not None
        with pool.connection() as observer:
            (last_query,) = observer.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
    # Django's own check would have sent an empty query ("") before handing it out.
    assert last_query == "SELECT 'the last query of the request'"


def test_a_connection_the_server_dropped_is_never_handed_out(pool):
    conn = pool.getconn()
    pid = backend_pid(conn)
    pool.putconn(conn)
    with pool.connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend was not terminated"
            time.sleep(0.05)

    with taking(pool) as take:
        # Every connection waiting in the pool, the dropped one among them.
        for _ in range(pool.get_stats()["pool_available"]):
            taken = take()
            assert taken is not conn
            assert backend_pid(taken) != pid  # and it works: the query went through

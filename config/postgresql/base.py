"""Django's PostgreSQL backend, with a pool that checks its connections without a round trip.

With CONN_HEALTH_CHECKS, Django's pool checks each connection it hands out with an empty
query: one more round trip to PostgreSQL for every unit of database work, and under load each
round trip is paid again waiting for the GIL (the event loop holds it while it relays
streams). Every participant's message takes a connection before the model is asked, every
page takes one, and the replies' heartbeat takes one a second.

A connection the server has dropped (a restart, `pg_terminate_backend`, an idle timeout, a
proxy that cut it) is readable: the server's last words and the end of the stream wait in its
socket. That is checked without a round trip; only a readable connection gets the empty query,
which then fails, and the pool replaces the connection. (A server that vanished without a word
would hang the empty query just as it hangs the first real one.)
"""

from __future__ import annotations

import select

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg import Connection
from psycopg_pool import ConnectionPool


def check_connection(connection: Connection) -> None:
    """Raise if `connection` is no longer usable; return at once when nothing says so."""
    if connection.closed:
        raise ConnectionError("the connection is closed")
    if _readable(connection.pgconn.socket):
        # Something unasked for came: the server closing it, or a notice. Ask, to be sure.
        ConnectionPool.check_connection(connection)


def _readable(fileno: int) -> bool:
    if hasattr(select, "poll"):  # not bound by FD_SETSIZE: a busy server has many sockets
        poller = select.poll()
        poller.register(fileno, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fileno], [], [], 0)  # pragma: no cover - no poll on Windows
    return bool(readable)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        options = self.settings_dict["OPTIONS"].get("pool")
        if (
            options
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and self.alias not in self._connection_pools
            and self.alias != NO_DB_ALIAS
        ):
            # As Django builds it (not opened at start, autocommit until Django sets it), but
            # with the check above.
            params = self.get_connection_params()
            params["autocommit"] = True
            pool = ConnectionPool(
                kwargs=params,
                open=False,
                configure=self._configure_connection,
                check=check_connection,
                **({} if options is True else options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool

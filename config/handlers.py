"""The ASGI handler for HTTP: each request's whole middleware chain and view in one thread.

Django's own ASGI handler runs a synchronous view's middleware in async mode: every
`MiddlewareMixin` middleware hands over to a thread for its request half and again for its
response half, two dozen hand-overs per request with our twelve. Each waits for the event loop,
which at hundreds of live interviews is busy relaying streams, and a database connection taken
early in the chain (the session) stays out of the pool across all of them: under load the pool
ran dry and pages failed with "couldn't get a connection" while PostgreSQL sat idle. Every view
here is synchronous, so the chain is built as under WSGI and entered once, in the request's
thread.

And at most HTTP_CONCURRENCY requests are handled at once per process; the rest wait their turn
on the event loop, where waiting costs nothing, instead of each holding a thread and fighting
for the GIL and the pool. Behind the reverse proxy, which buffers request and response bodies,
a slow client does not hold a turn.
"""

from __future__ import annotations

import asyncio
import weakref

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler


class HTTPHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # One per event loop (a semaphore belongs to the loop it first waits on).
        self.turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def handle(self, scope, receive, send) -> None:
        loop = asyncio.get_running_loop()
        if loop not in self.turns:
            self.turns[loop] = asyncio.Semaphore(settings.HTTP_CONCURRENCY)
        async with self.turns[loop]:
            await super().handle(scope, receive, send)

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
a slow client does not hold a turn. The turns are threads kept for the process's life, as a
WSGI server keeps its threads: Django's ASGI handler starts a thread for every request, and
each new thread builds its own database wrapper (a cycle of some 30 objects, freed only by a
full collection) and, on SQLite, opens the file again.

And a request leaves no reference cycle behind (see `listen_for_disconnect`): only the garbage
collector's full collections free cycles, and those stop every stream of the process.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

# The request being handled, for `handle` to empty once its response is sent.
_REQUEST: ContextVar = ContextVar("request", default=None)


class HTTPHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # The threads free to take a request, one queue per event loop (a queue belongs to the
        # loop it first waits on).
        self.turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Queue] = (
            weakref.WeakKeyDictionary()
        )

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope, receive, send) -> None:
        """Django's, with the request's thread-sensitive work (its middleware, view, signals
        and the closing of its response) on a thread of the process's own."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        turns = self._turns()
        thread = await turns.get()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            turns.put_nowait(thread)

    def _turns(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if loop not in self.turns:
            turns: asyncio.Queue = asyncio.Queue()
            for _ in range(settings.HTTP_CONCURRENCY):
                turns.put_nowait(ThreadPoolExecutor(max_workers=1, thread_name_prefix="http"))
            self.turns[loop] = turns
        return self.turns[loop]

    async def handle(self, scope, receive, send) -> None:
        try:
            await super().handle(scope, receive, send)
        finally:
            request = _REQUEST.get()
            _REQUEST.set(None)
            if request is not None:
                # Django's request is held by what hangs on it (the lazy `user`, the messages
                # storage, htmx's details): cycles, freed only by a collection. Once the
                # response is sent and closed nothing uses it; emptied, all of it is freed at
                # once, by reference counting.
                request.__dict__.clear()

    def create_request(self, scope, body_file):
        request, error_response = super().create_request(scope, body_file)
        _REQUEST.set(request)
        return request, error_response

    async def listen_for_disconnect(self, receive) -> None:
        """Return when the client is gone, where Django's raises RequestAborted.

        The server says the client is gone once the response is sent (uvicorn does), so that
        exception was raised for every request, and `handle` keeps it in its task: raised again
        there, its traceback took in `handle`'s own frame, which holds the task. Each request,
        with its session, view and response, became a reference cycle of some 160 objects that
        only a full collection frees: after 500 participants joined at once, one collection
        freed 81,000 objects and stopped the event loop, with every interview's stream, for
        280 ms (bench/interviews.py). `handle` needs only to see the task done."""
        message = await receive()
        if message["type"] != "http.disconnect":
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")

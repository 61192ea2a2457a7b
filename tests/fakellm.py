"""A fake OpenAI-compatible HTTP server for tests and benchmarks.

Why a real HTTP server instead of mocking the SDK: the app talks to the LLM
through the real ``openai`` client, and the bugs worth catching live in that
boundary (SSE parsing, tool-call argument accumulation, retries, error mapping,
broken connections). So the fake speaks the wire format on loopback and the
real client, unmodified, is what talks to it.

Usage::

    with FakeLLM() as llm:
        llm.queue_text("Hello there")
        client = openai.OpenAI(base_url=llm.base_url, api_key="test")
        ...
        assert llm.chat_requests[0].body["model"] == "gpt-4o-mini"

Replies are served in the order they were queued, for streaming and
non-streaming requests alike; when the queue is empty ``llm.responder`` (if
set) answers, and otherwise a deterministic default reply is produced.

Run ``python -m tests.fakellm --port 8001 --tokens-per-second 30`` for a
foreground server (benchmarks); it prints its base URL on the first line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

__all__ = [
    "BrokenStreamReply",
    "ErrorReply",
    "FakeLLM",
    "RecordedRequest",
    "Reply",
    "TextReply",
    "ToolCall",
    "ToolCallReply",
    "fake_llm",
    "hashed_embedding",
    "split_tokens",
]

log = logging.getLogger(__name__)

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PREFIX = "/v1"
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_DEFAULT_REPLY = (
    "That sounds like it matters to you. When you imagine being in that moment, "
    "what do you find yourself paying attention to, and what would a wise person notice there?"
)
# Status -> (type, code, message), matching what api.openai.com returns.
_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_DEFAULT_MODELS = ("fake-chat", "fake-embedding", "omni-moderation-latest")
_TOKEN_RE = re.compile(r"\s*\S+|\s+\Z")
_WORD_RE = re.compile(r"\w+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish "tokens" that join back to exactly ``text``.

    Each token carries its leading whitespace (``"Hello", " there"``), the way
    BPE tokens do, so streamed pieces look like what a real model sends.
    """
    return _TOKEN_RE.findall(text)


def hashed_embedding(text: str, dim: int) -> list[float]:
    """A deterministic, L2-normalised hashed bag of words.

    Texts sharing words get a high cosine similarity, so dedup/cluster code has
    something meaningful to work on without a model.
    """
    vec = [0.0] * dim
    for word in _WORD_RE.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vec[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]


# ---------------------------------------------------------------------------
# Scripted replies
# ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Paced:
    """Timing shared by every reply.

    ``None`` inherits the server-wide setting (``FakeLLM(first_token_delay=...,
    tokens_per_second=...)``), whose own default is "no delay, as fast as possible".
    """

    delay: float | None = None  # seconds before the response starts (time to first byte)
    tokens_per_second: float | None = None  # pacing of streamed pieces (or whole reply)


@dataclass(kw_only=True)
class TextReply(_Paced):
    """Assistant text; streamed as word tokens, or ``chunk_size``-character pieces."""

    text: str
    chunk_size: int | None = None
    finish_reason: str = "stop"
    # Seconds the body stays open after ``data: [DONE]`` before it ends (a misbehaving
    # server or proxy); by default it ends right away, as real providers do.
    open_after_done: float = 0.0


@dataclass(kw_only=True)
class ToolCall:
    """One function call; ``arguments`` is the raw JSON string, sent verbatim."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(kw_only=True)
class ToolCallReply(_Paced):
    """Tool calls (optionally after some text); arguments split over ``split_into`` chunks."""

    calls: list[ToolCall]
    split_into: int = 3
    text_before: str | None = None


@dataclass(kw_only=True)
class ErrorReply(_Paced):
    """An HTTP error with OpenAI's ``{"error": {...}}`` body; unset fields follow the status."""

    status: int = 500
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None  # seconds; sent as retry-after and retry-after-ms
    should_retry: bool | None = None  # sent as x-should-retry, which the SDK obeys


@dataclass(kw_only=True)
class BrokenStreamReply(_Paced):
    """Sends ``text_before_break`` and then fails mid-response.

    By default the TCP connection is dropped without the terminating chunk (no
    ``[DONE]``), like a proxy or provider dying. With ``error_event`` set, an SSE
    ``data: {"error": ...}`` event is sent instead and the body ends cleanly,
    which is how providers report failures after streaming has begun.
    """

    text_before_break: str = "Partial repl"
    error_event: str | None = None


Reply = TextReply | ToolCallReply | ErrorReply | BrokenStreamReply
ReplyLike = Reply | str | dict[str, Any] | list[Any]
Responder = Callable[[dict[str, Any]], ReplyLike | None]


def _as_reply(item: ReplyLike) -> Reply:
    """Let responders return plain text or a JSON-able object for brevity."""
    if isinstance(item, TextReply | ToolCallReply | ErrorReply | BrokenStreamReply):
        return item
    if isinstance(item, str):
        return TextReply(text=item)
    return TextReply(text=json.dumps(item))


def _chunks(text: str, chunk_size: int | None) -> list[str]:
    if chunk_size is None:
        return split_tokens(text)
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]


def _split_even(text: str, parts: int) -> list[str]:
    """Split into ``parts`` contiguous pieces (fewer only if the text is shorter)."""
    parts = max(1, min(parts, len(text)))
    bounds = [round(i * len(text) / parts) for i in range(parts + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]


# ---------------------------------------------------------------------------
# Request records
# ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the server saw it.

    ``outcome`` is set when the server is done with it: ``"completed"``,
    ``"error"`` (an error status was sent), ``"broken"`` (a scripted break),
    ``"client_disconnected"`` or ``"server_stopped"``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client: str = ""  # the client's address and port: one per TCP connection
    outcome: str = "pending"
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def prompt_text(self) -> str:
        """All message text joined by newlines, for asserting what the model was shown."""
        return "\n".join(_content_text(m.get("content")) for m in self.messages)

    def wait_finished(self, timeout: float = 5.0) -> str:
        """Block until the server has finished responding; returns the outcome."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"request {self.path} still {self.outcome} after {timeout}s")
        return self.outcome


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _DeliberateAbort(Exception):
    """Raised inside the ASGI app to make uvicorn drop the connection mid-response."""


class _QuietDeliberateAborts(logging.Filter):
    """Keep scripted connection drops out of the logs; real app errors still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DeliberateAbort)


def _install_log_filter() -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDeliberateAborts) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_QuietDeliberateAborts())


_install_log_filter()


class _Connection:
    """Notices a client disconnect, so paced streams stop instead of talking to nobody."""

    def __init__(self, receive: Receive) -> None:
        self.disconnected = False
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True

    def close(self) -> None:
        self._task.cancel()


class _Stopped(Exception):
    """The client went away or the server is stopping; stop producing output."""


class _PromptServer(uvicorn.Server):
    """uvicorn's server, minus its 100ms polling at idle and at shutdown.

    Tests start a server per test, so those polls would add ~0.2s to each one.
    This leans on the same attributes uvicorn's own ``shutdown`` uses. The CLI
    keeps the stock server, whose polling also notices Ctrl-C.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _wakeup: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await self.on_tick(0)  # sets the default response headers
        if not self.should_exit:
            await self._wakeup.wait()

    def request_stop(self) -> None:
        """Thread-safe: wake the main loop so shutdown starts now."""
        self.should_exit = True
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wakeup.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        state = self.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in state.tasks:
            task.cancel()


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class FakeLLM:
    """An OpenAI-compatible server on loopback, scripted by the test.

    Thread-safe: tests queue replies and read ``requests`` from their thread
    while the server runs its own event loop in a background thread.
    """

    def __init__(
        self,
        *,
        default_reply_tokens: int = 150,
        tokens_per_second: float | None = None,
        first_token_delay: float = 0.0,
        embedding_dim: int = 256,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.default_reply_tokens = default_reply_tokens
        self.tokens_per_second = tokens_per_second
        self.first_token_delay = first_token_delay
        self.stamp_tokens = False
        self.embedding_dim = embedding_dim
        self.api_key = api_key  # when set, other keys get a 401 like the real API
        self.host = host
        self.port = port
        self.responder: Responder | None = None
        self.embedder: Callable[[str], list[float]] | None = None
        # word -> moderation category; a plain set of words flags "harassment".
        self.flag_words: dict[str, str] | set[str] = set()
        self.moderation_available = True
        self.models = list(_DEFAULT_MODELS)
        self.responder_errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._closing = False
        self._server: _PromptServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to the openai client."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeLLM:
        """Serve from a background thread; returns once the socket accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeLLM already started")
        self._closing = False
        sock = self._bind()
        self._server = _PromptServer(self._config(log_config=None, log_level=None))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"fakellm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("fake LLM server thread died during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("fake LLM server did not start within 10s")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop the server; in-flight responses are cut off within ~50ms."""
        if self._thread is None or self._server is None:
            return
        self._closing = True
        self._server.request_stop()
        self._thread.join(timeout=5)
        if self._thread.is_alive():  # pragma: no cover - only if something hangs
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._thread = None
        self._server = None

    def serve_forever(self, *, log_level: str = "warning") -> None:
        """Run in the foreground (the CLI); Ctrl-C stops it."""
        sock = self._bind()
        print(self.base_url, flush=True)
        uvicorn.Server(self._config(log_level=log_level)).run(sockets=[sock])

    def _bind(self) -> socket.socket:
        """Bind ourselves so port 0 works and the real port is known before serving."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        return sock

    def _config(self, **logging_kwargs: Any) -> uvicorn.Config:
        return uvicorn.Config(
            self.asgi,
            interface="asgi3",
            proxy_headers=False,
            lifespan="off",
            ws="none",
            access_log=False,
            timeout_graceful_shutdown=2,
            backlog=2048,
            **logging_kwargs,
        )

    # -- scripting ---------------------------------------------------------

    def queue(self, *replies: ReplyLike) -> None:
        """Append replies; each chat request (streaming or not) consumes the oldest."""
        with self._lock:
            self._queue.extend(_as_reply(r) for r in replies)

    def queue_text(
        self,
        text: str,
        *,
        chunk_size: int | None = None,
        finish_reason: str = "stop",
        delay: float | None = None,
        tokens_per_second: float | None = None,
        open_after_done: float = 0.0,
    ) -> None:
        self.queue(
            TextReply(
                text=text,
                chunk_size=chunk_size,
                finish_reason=finish_reason,
                delay=delay,
                tokens_per_second=tokens_per_second,
                open_after_done=open_after_done,
            )
        )

    def queue_json(
        self, obj: Any, *, delay: float | None = None, tokens_per_second: float | None = None
    ) -> None:
        """Reply whose message content is ``json.dumps(obj)`` (for JSON-mode judges)."""
        self.queue_text(json.dumps(obj), delay=delay, tokens_per_second=tokens_per_second)

    def queue_tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str,
        *,
        split_into: int = 3,
        text_before: str | None = None,
        call_id: str | None = None,
        delay: float | None = None,
        tokens_per_second: float | None = None,
    ) -> None:
        """A function call; a raw string is sent verbatim (use it for malformed JSON)."""
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        self.queue(
            ToolCallReply(
                calls=[ToolCall(name=name, arguments=raw, id=call_id)],
                split_into=split_into,
                text_before=text_before,
                delay=delay,
                tokens_per_second=tokens_per_second,
            )
        )

    def queue_error(
        self,
        status: int = 500,
        *,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        delay: float | None = None,
    ) -> None:
        self.queue(
            ErrorReply(
                status=status,
                message=message,
                type=type,
                code=code,
                retry_after=retry_after,
                should_retry=should_retry,
                delay=delay,
            )
        )

    def queue_broken_stream(
        self,
        text_before_break: str = "Partial repl",
        *,
        error_event: str | None = None,
        delay: float | None = None,
        tokens_per_second: float | None = None,
    ) -> None:
        self.queue(
            BrokenStreamReply(
                text_before_break=text_before_break,
                error_event=error_event,
                delay=delay,
                tokens_per_second=tokens_per_second,
            )
        )

    @property
    def pending(self) -> int:
        """Queued replies not yet consumed (a test may assert this is 0)."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget queue, records and hooks (for reusing one server across tests)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
        self.responder = None
        self.embedder = None
        self.flag_words = set()
        self.moderation_available = True
        self.responder_errors = []
        self.models = list(_DEFAULT_MODELS)

    # -- inspection --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == f"{API_PREFIX}/chat/completions"]

    @property
    def open_connections(self) -> int:
        """How many client connections the server holds open now (in use or kept alive)."""
        server = self._server
        return len(server.server_state.connections) if server is not None else 0

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests have arrived (for fire-and-forget code)."""
        deadline = time.monotonic() + timeout
        while len(reqs := self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(reqs)} of {count} requests after {timeout}s")
            time.sleep(0.005)
        return reqs

    # -- ASGI --------------------------------------------------------------

    async def asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The raw ASGI app: record the request, then route it."""
        if scope["type"] != "http":
            return
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        client = scope.get("client") or ("", 0)
        record = RecordedRequest(
            method=method, path=path, headers=headers, body=body, client=f"{client[0]}:{client[1]}"
        )
        with self._lock:
            self._requests.append(record)
        try:
            record.outcome = await self._route(record, receive, send)
        except _DeliberateAbort:
            record.outcome = "broken" if not self._closing else "server_stopped"
            raise
        finally:
            record.finished.set()

    async def _route(self, record: RecordedRequest, receive: Receive, send: Send) -> str:
        method, path, body = record.method, record.path, record.body
        if self.api_key is not None and record.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            return await _send_error(send, ErrorReply(status=401))
        if method == "GET" and path == f"{API_PREFIX}/models":
            data = [self._model_object(m) for m in self.models]
            return await _send_json(send, 200, {"object": "list", "data": data})
        if method == "GET" and path.startswith(f"{API_PREFIX}/models/"):
            model = path.removeprefix(f"{API_PREFIX}/models/")
            if model in self.models:
                return await _send_json(send, 200, self._model_object(model))
            return await _send_error(send, ErrorReply(status=404))
        if method != "POST" or path not in _POST_ROUTES:
            return await _send_error(send, _invalid_url(method, path))
        if not isinstance(body, dict):
            return await _send_error(
                send, ErrorReply(status=400, message="We could not parse the JSON body.")
            )
        if path == f"{API_PREFIX}/embeddings":
            return await self._embeddings(body, send)
        if path == f"{API_PREFIX}/moderations":
            return await self._moderations(body, send)
        connection = _Connection(receive)
        try:
            return await self._chat(body, connection, send)
        except _Stopped:
            if connection.disconnected:
                return "client_disconnected"
            raise _DeliberateAbort from None  # server stopping: drop the connection
        finally:
            connection.close()

    def _model_object(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "fake-llm"}

    # -- chat completions --------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            try:
                answer = self.responder(body)
            except Exception as exc:
                log.exception("FakeLLM responder raised")
                self.responder_errors.append(exc)
                return ErrorReply(
                    status=500,
                    message=f"fake LLM responder raised {exc!r}",
                    type="fake_llm_error",
                    should_retry=False,
                )
            if answer is not None:
                return _as_reply(answer)
        words = itertools.islice(itertools.cycle(_DEFAULT_REPLY.split()), self.default_reply_tokens)
        return TextReply(text=" ".join(words))

    async def _pause(self, seconds: float, connection: _Connection) -> None:
        """Sleep, but give up promptly if the client leaves or the server stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if self._closing or connection.disconnected:
                raise _Stopped
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.05))

    async def _chat(self, body: dict[str, Any], connection: _Connection, send: Send) -> str:
        received = time.time()
        reply = self._next_reply(body)
        delay = self.first_token_delay if reply.delay is None else reply.delay
        if delay:
            await self._pause(delay, connection)
        if isinstance(reply, ErrorReply):
            return await _send_error(send, reply)
        plan = _Plan.from_reply(reply, next(self._ids))
        tps = reply.tokens_per_second or self.tokens_per_second
        completion = _Completion(
            id=f"chatcmpl-fake{next(self._ids)}",
            created=int(time.time()),
            model=str(body.get("model") or "fake-chat"),
            prompt_tokens=_prompt_tokens(body),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        )
        if body.get("stream") is True:
            return await self._stream(plan, completion, tps, connection, send, received)
        if tps:
            await self._pause(plan.completion_tokens / tps, connection)
        return await self._complete(plan, completion, send)

    async def _stream(
        self,
        plan: _Plan,
        completion: _Completion,
        tps: float | None,
        connection: _Connection,
        send: Send,
        received: float = 0.0,
    ) -> str:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", completion.id.encode()),
                ],
            }
        )

        async def emit(data: str) -> None:
            await send({"type": "http.response.body", "body": data.encode(), "more_body": True})

        loop = asyncio.get_running_loop()
        started = loop.time()
        for n, delta in enumerate(plan.deltas()):
            if tps and n:
                await self._pause(started + n / tps - loop.time(), connection)
            elif self._closing or connection.disconnected:
                raise _Stopped
            if self.stamp_tokens and delta.get("content"):
                # Benchmarks measure the lag of each token from this send time to the browser;
                # the first piece also carries the time the request arrived, so that the
                # model's own first-token time can be told apart from the application's.
                stamp = f"@{time.time():.6f}@"
                if received:
                    stamp += f"#{received:.6f}#"
                    received = 0.0
                delta = {**delta, "content": f"{delta['content']}{stamp}"}
            await emit(completion.chunk(delta))
        if plan.error_event is not None:
            await emit(f"data: {json.dumps({'error': _error_body(plan.error_event)})}\n\n")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return "broken"
        if plan.break_connection:
            raise _DeliberateAbort
        await emit(completion.chunk({}, finish_reason=plan.finish_reason))
        if completion.include_usage:
            await emit(completion.usage_chunk(plan.completion_tokens))
        done = b"data: [DONE]\n\n"
        if plan.open_after_done:
            await send({"type": "http.response.body", "body": done, "more_body": True})
            await self._pause(plan.open_after_done, connection)
            done = b""
        await send({"type": "http.response.body", "body": done, "more_body": False})
        return "completed"

    async def _complete(self, plan: _Plan, completion: _Completion, send: Send) -> str:
        if plan.error_event is not None:
            return await _send_error(send, ErrorReply(status=500, message=plan.error_event))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.message_content,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": args},
                }
                for call, args in ((call, "".join(pieces)) for call, pieces in plan.tool_calls)
            ]
        payload = {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": completion.usage(plan.completion_tokens),
        }
        if not plan.break_connection:
            return await _send_json(send, 200, payload)
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
        )
        raise _DeliberateAbort

    # -- embeddings and moderations ---------------------------------------

    async def _embeddings(self, body: dict[str, Any], send: Send) -> str:
        texts = _embedding_inputs(body.get("input"))
        if not texts:
            return await _send_error(send, ErrorReply(status=400, message="'input' is required."))
        dim = int(body.get("dimensions") or self.embedding_dim)
        data = []
        for index, text in enumerate(texts):
            vector = self.embedder(text) if self.embedder else hashed_embedding(text, dim)
            encoded: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(split_tokens(t)) for t in texts)
        return await _send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model") or "fake-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def _moderations(self, body: dict[str, Any], send: Send) -> str:
        if not self.moderation_available:
            return await _send_error(send, _invalid_url("POST", f"{API_PREFIX}/moderations"))
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            texts = list(raw)
        else:  # multimodal parts: one result for the whole list, as the real API does
            texts = [_content_text(raw)]
        words = (
            self.flag_words
            if isinstance(self.flag_words, dict)
            else dict.fromkeys(self.flag_words, "harassment")
        )
        results = []
        for text in texts:
            hit = {cat for word, cat in words.items() if word.casefold() in text.casefold()}
            results.append(
                {
                    "flagged": bool(hit),
                    "categories": {c: c in hit for c in MODERATION_CATEGORIES},
                    "category_scores": {
                        c: 0.97 if c in hit else 0.0001 for c in MODERATION_CATEGORIES
                    },
                    "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
                }
            )
        return await _send_json(
            send,
            200,
            {
                "id": f"modr-fake{next(self._ids)}",
                "model": str(body.get("model") or "omni-moderation-latest"),
                "results": results,
            },
        )


_POST_ROUTES = frozenset(
    f"{API_PREFIX}/{name}" for name in ("chat/completions", "embeddings", "moderations")
)


@dataclass
class _Plan:
    """A reply turned into what goes on the wire: text pieces and tool-call pieces."""

    content_pieces: list[str]
    tool_calls: list[tuple[ToolCall, list[str]]]
    finish_reason: str
    break_connection: bool = False
    error_event: str | None = None
    open_after_done: float = 0.0

    @classmethod
    def from_reply(cls, reply: Reply, seq: int) -> _Plan:
        if isinstance(reply, TextReply):
            return cls(
                _chunks(reply.text, reply.chunk_size),
                [],
                reply.finish_reason,
                open_after_done=reply.open_after_done,
            )
        if isinstance(reply, BrokenStreamReply):
            return cls(
                split_tokens(reply.text_before_break),
                [],
                "stop",
                break_connection=reply.error_event is None,
                error_event=reply.error_event,
            )
        if isinstance(reply, ToolCallReply):
            calls = [
                (
                    ToolCall(name=c.name, arguments=c.arguments, id=c.id or f"call_fake{seq}_{i}"),
                    _split_even(c.arguments, reply.split_into),
                )
                for i, c in enumerate(reply.calls)
            ]
            return cls(split_tokens(reply.text_before or ""), calls, "tool_calls")
        raise TypeError(f"cannot stream {reply!r}")

    @property
    def content(self) -> str:
        return "".join(self.content_pieces)

    @property
    def completion_tokens(self) -> int:
        """Word tokens, however the text happens to be chunked on the wire."""
        args = "".join(a for _, pieces in self.tool_calls for a in pieces)
        return len(split_tokens(self.content)) + len(split_tokens(args))

    @property
    def message_content(self) -> str | None:
        """``None`` only for a pure tool call, as the real API does."""
        return None if self.tool_calls and not self.content else self.content

    def deltas(self) -> Iterator[dict[str, Any]]:
        """The ``delta`` objects, in the order and shape api.openai.com sends them."""
        content = None if self.message_content is None else ""
        yield {"role": "assistant", "content": content, "refusal": None}
        for piece in self.content_pieces:
            yield {"content": piece}
        for index, (call, pieces) in enumerate(self.tool_calls):
            yield {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
            for piece in pieces:
                yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


@dataclass
class _Completion:
    """Per-response constants shared by every chunk."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    include_usage: bool

    def _envelope(self, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        envelope = self._envelope(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )
        if self.include_usage:
            envelope["usage"] = None
        return f"data: {json.dumps(envelope, separators=(',', ':'))}\n\n"

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def usage_chunk(self, completion_tokens: int) -> str:
        envelope = self._envelope([])
        envelope["usage"] = self.usage(completion_tokens)
        return f"data: {json.dumps(envelope, separators=(',', ':'))}\n\n"


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    text = "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return len(split_tokens(text)) + 3 * len(messages)  # a little per-message overhead


def _embedding_inputs(raw: Any) -> list[str]:
    """Strings, a list of strings, token ids or lists of token ids -> one text each."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return []
    if all(isinstance(x, int) for x in raw):
        return [" ".join(map(str, raw))]
    return [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]


def _invalid_url(method: str, path: str) -> ErrorReply:
    return ErrorReply(status=404, message=f"Invalid URL ({method} {path})", code="")


def _error_body(
    message: str, type_: str = "server_error", code: str | None = None
) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": None, "code": code}


async def _send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> str:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})
    return "completed" if status < 400 else "error"


async def _send_error(send: Send, reply: ErrorReply) -> str:
    type_, code, message = _ERROR_DEFAULTS.get(
        reply.status, ("invalid_request_error", None, f"Error {reply.status}.")
    )
    headers: list[tuple[bytes, bytes]] = []
    if reply.retry_after is not None:
        headers.append((b"retry-after", f"{reply.retry_after:g}".encode()))
        headers.append((b"retry-after-ms", str(round(reply.retry_after * 1000)).encode()))
    if reply.should_retry is not None:
        headers.append((b"x-should-retry", b"true" if reply.should_retry else b"false"))
    code = reply.code if reply.code is not None else code
    body = _error_body(reply.message or message, reply.type or type_, code or None)
    return await _send_json(send, reply.status, {"error": body}, headers)


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fresh fake per test; import it into a conftest to share it."""
    with FakeLLM() as llm:
        yield llm


def main(argv: list[str] | None = None) -> None:
    """Foreground server with the default reply, for benchmarks and manual poking."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakellm", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tokens-per-second", type=float, default=None)
    parser.add_argument("--reply-tokens", type=int, default=150)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--stamp-tokens",
        action="store_true",
        help="append @<send time>@ to each streamed piece, for lag measurements",
    )
    args = parser.parse_args(argv)
    server = FakeLLM(
        host=args.host,
        port=args.port,
        tokens_per_second=args.tokens_per_second,
        default_reply_tokens=args.reply_tokens,
        first_token_delay=args.first_token_delay,
        api_key=args.api_key,
    )
    server.stamp_tokens = args.stamp_tokens
    server.serve_forever(log_level=args.log_level)


if __name__ == "__main__":
    main()

"""The one module that talks to a language model, through the `openai` SDK.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, Ollama, llama.cpp server): base URL, key,
model and timeouts come from settings. Retries of 429, 5xx and timeouts before a reply starts are
the SDK's own (exponential backoff, LLM_MAX_RETRIES times); a stream that breaks after it started
is not retried here: what arrived is kept and the caller offers the participant a retry.

Participant text never goes into instructions. It is sent in the user role, fenced and labelled
as data (see `fence`), and the system prompt says that fenced text is never to be obeyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import openai
from django.conf import settings

logger = logging.getLogger(__name__)

# Transport errors that can escape the SDK while a stream is read. Recent SDK releases ship
# their own fork of httpx ("httpx2"); both families are caught.
try:
    import httpx2

    TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
        httpx.HTTPError,
        httpx2.HTTPError,
        ConnectionError,
    )
except ImportError:  # pragma: no cover - older SDKs use plain httpx
    TRANSPORT_ERRORS = (httpx.HTTPError, ConnectionError)

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


class LLMError(Exception):
    """A call to the model failed. `kind` says how, for the message shown to the participant:
    "timeout", "rate_limited", "unavailable", "broken_stream", "refused", "invalid"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- Prompts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A named, versioned prompt text. The version is recorded with everything it produced."""

    name: str
    version: str
    text: str


@cache
def load_prompt(name: str) -> Prompt:
    """The newest version of a prompt: prompts/<name>-v<N>.txt with the highest N."""
    candidates = sorted(
        PROMPTS_DIR.glob(f"{name}-v*.txt"), key=lambda p: int(p.stem.rsplit("-v", 1)[1])
    )
    if not candidates:
        raise FileNotFoundError(f"no prompt named {name!r} in {PROMPTS_DIR}")
    path = candidates[-1]
    return Prompt(name=name, version=path.stem, text=path.read_text(encoding="utf-8").strip())


FENCE_OPEN = "<participant_text>"
FENCE_CLOSE = "</participant_text>"


def fence(text: str) -> str:
    """Wrap participant text as data. Fence markers inside the text are defused so that a
    participant cannot close the fence and write instructions after it."""
    cleaned = text.replace(FENCE_OPEN, "<participant-text>").replace(
        FENCE_CLOSE, "</participant-text>"
    )
    return f"{FENCE_OPEN}\n{cleaned}\n{FENCE_CLOSE}"


# --- The client ---------------------------------------------------------------------------------


def is_configured() -> bool:
    return bool(settings.LLM_ENABLED)


def _client_options() -> dict[str, Any]:
    return {
        # Local servers (vLLM, Ollama, llama.cpp) accept any key but the SDK requires one.
        "api_key": settings.LLM_API_KEY or "not-needed",
        "base_url": settings.LLM_BASE_URL or None,
        "timeout": settings.LLM_TIMEOUT,
        "max_retries": settings.LLM_MAX_RETRIES,
    }


def _http_client(timeout: float) -> Any:
    """The async client's HTTP stack. With aiohttp (the default) the SDK reads the model's
    stream through aiohttp's C parser instead of httpx's pure-Python one with a timeout scope
    per read: about a third less of the server's CPU per token read (bench/llm_client.py), and
    the CPU of the server's core is what limits concurrent interviews (bench/interviews.py).
    None: the SDK's own httpx client (LLM_HTTP_CLIENT=httpx). aiohttp comes with the
    openai[aiohttp] requirement."""
    if settings.LLM_HTTP_CLIENT != "aiohttp":
        return None
    return openai.DefaultAioHttpClient(timeout=timeout)


@dataclass
class _LoopClients:
    """The async clients of one event loop, and the async generator that closes them."""

    clients: dict[str, openai.AsyncOpenAI] = field(default_factory=dict)
    closer: AsyncIterator[None] | None = None


async def _close_at_loop_shutdown(clients: dict[str, openai.AsyncOpenAI]) -> AsyncIterator[None]:
    """Suspended until the loop shuts down its async generators (asyncio.run, asgiref's
    async_to_sync and pytest do, before closing the loop), then closes the loop's clients: a
    Celery task or a plain form post runs a loop for one call, and its connections are closed
    with it instead of left for the garbage collector ("Unclosed client session")."""
    try:
        yield
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        clients.clear()


# Async clients hold connection pools bound to the event loop that opened them, so they are
# kept per loop (the server has one; each async_to_sync call from sync code may have its own).
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]
_async_clients = weakref.WeakKeyDictionary()


async def async_client() -> openai.AsyncOpenAI:
    """One client (and connection pool) per configuration and event loop, reused."""
    options = _client_options()
    key = json.dumps([options, settings.LLM_HTTP_CLIENT], sort_keys=True)
    per_loop = _async_clients.setdefault(asyncio.get_running_loop(), _LoopClients())
    if key not in per_loop.clients:
        if per_loop.closer is None:
            per_loop.closer = _close_at_loop_shutdown(per_loop.clients)
            await anext(per_loop.closer)
        http_client = _http_client(options["timeout"])
        per_loop.clients[key] = openai.AsyncOpenAI(**options, http_client=http_client)
    return per_loop.clients[key]


@cache
def _sync_client(options_key: str) -> openai.OpenAI:
    return openai.OpenAI(**json.loads(options_key))


def sync_client() -> openai.OpenAI:
    """For background tasks, which run synchronous code."""
    return _sync_client(json.dumps(_client_options(), sort_keys=True))


def _translate(error: Exception) -> LLMError:
    if isinstance(error, openai.APITimeoutError) or "Timeout" in type(error).__name__:
        return LLMError("timeout", "The language model took too long to answer.")
    if isinstance(error, openai.RateLimitError):
        return LLMError("rate_limited", "The language model is busy (rate limited).")
    if isinstance(error, openai.BadRequestError | openai.UnprocessableEntityError):
        return LLMError("refused", f"The language model refused the request: {error}")
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMError("unavailable", "The language model rejected our credentials.")
    if isinstance(error, openai.APIStatusError):
        return LLMError("unavailable", f"The language model failed ({error.status_code}).")
    if isinstance(error, openai.APIConnectionError):
        return LLMError("unavailable", "The language model could not be reached.")
    return LLMError("broken_stream", f"The reply broke off: {type(error).__name__}")


def warm_up() -> None:
    """Load now what the SDK and this module would otherwise load on first use (the SDK's
    resource and type modules, what its HTTP client connects with, the interviewer's prompt): a
    server does it once at start, not in the middle of a participant's first reply (see
    config/asgi.py)."""
    import anyio._backends._asyncio  # noqa: F401
    import openai.resources.chat.completions
    import openai.resources.moderations
    import openai.types.chat  # noqa: F401

    load_prompt("interviewer")


# --- Streaming chat with tools ------------------------------------------------------------------


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCall:
    name: str
    arguments: str  # raw JSON text as the model wrote it; validated by the caller
    id: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _ToolCallBuffer:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


# How long the end of a stream is waited for after its "[DONE]" event (see _read_to_the_end).
END_OF_STREAM_SECONDS = 1.0


async def _read_to_the_end(lines: AsyncIterator[str]) -> None:
    """Read what follows "[DONE]": the end of the response body, which servers send right
    after it. A response left unread to its end closes its connection instead of returning it
    to the pool, and every reply then opened a new connection (with OpenAI, a TLS handshake
    too) before the participant's first token: at 500 concurrent interviews, connecting took
    up to 90 ms at p99 (bench/interviews.py). A server that keeps the body open after
    "[DONE]" does not hold the reply: after END_OF_STREAM_SECONDS its connection is dropped."""
    with contextlib.suppress(TimeoutError, openai.OpenAIError, *TRANSPORT_ERRORS):
        async with asyncio.timeout(END_OF_STREAM_SECONDS):
            async for _line in lines:
                pass


async def stream_chat(
    messages: Sequence[dict[str, Any]],
    *,
    model: str,
    tools: Sequence[dict[str, Any]] = (),
    temperature: float | None = None,
) -> AsyncIterator[TextDelta | ToolCall | Usage]:
    """Stream a chat completion: text deltas as they arrive, then each completed tool call,
    then the token usage. Raises LLMError; text already yielded stays with the caller."""
    # The conversation and the tools go in `extra_body`, which the SDK sends as they are: they
    # are plain JSON already, and the SDK's recursive transform of `messages` cost ~10 ms of CPU
    # per request, growing with the conversation, right before the participant's first token.
    body: dict[str, Any] = {"messages": list(messages)}
    if tools:
        body["tools"] = list(tools)
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": settings.LLM_TEMPERATURE if temperature is None else temperature,
        "extra_body": body,
    }
    calls: dict[int, _ToolCallBuffer] = {}
    usage = Usage()
    started = False
    try:
        # The SDK sends the request (with its retries and error mapping); the server-sent events
        # are read as plain JSON rather than through the SDK's typed chunk objects, which cost
        # more CPU than the whole rest of the relay when hundreds of replies stream at once.
        async with (await async_client()).chat.completions.with_streaming_response.create(
            **kwargs
        ) as response:
            lines = response.iter_lines()
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    await _read_to_the_end(lines)
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    raise LLMError("broken_stream", f"The model reported: {chunk['error']}")
                started = True
                if chunk.get("usage"):
                    usage = Usage(
                        chunk["usage"].get("prompt_tokens") or 0,
                        chunk["usage"].get("completion_tokens") or 0,
                    )
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield TextDelta(delta["content"])
                    for call in delta.get("tool_calls") or ():
                        buffer = calls.setdefault(call.get("index", 0), _ToolCallBuffer())
                        function = call.get("function") or {}
                        if call.get("id"):
                            buffer.id = call["id"]
                        if function.get("name"):
                            buffer.name = function["name"]
                        if function.get("arguments"):
                            buffer.arguments.append(function["arguments"])
    except LLMError:
        raise
    except (openai.OpenAIError, *TRANSPORT_ERRORS, ValueError) as error:
        # Once chunks have arrived, any failure (a cut connection, an in-stream error event)
        # means the reply broke off.
        translated = _translate(error)
        if started and translated.kind != "timeout":
            translated = LLMError("broken_stream", f"The reply broke off: {error}")
        logger.warning("LLM stream failed (%s): %r", translated.kind, error)
        raise translated from error
    for index in sorted(calls):
        buffer = calls[index]
        yield ToolCall(name=buffer.name, arguments="".join(buffer.arguments), id=buffer.id)
    yield usage


# --- Structured, non-streaming calls (pipeline) ------------------------------------------------


@dataclass
class ToolAnswer:
    name: str
    arguments: dict[str, Any]
    usage: Usage
    model: str


def call_tool(
    messages: Sequence[dict[str, Any]],
    *,
    tool: dict[str, Any],
    model: str | None = None,
    temperature: float = 0.0,
) -> ToolAnswer:
    """Ask for one forced tool call and return its parsed arguments (for background jobs)."""
    model = model or settings.LLM_MODEL
    name = tool["function"]["name"]
    try:
        response = sync_client().chat.completions.create(
            model=model,
            messages=list(messages),
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": name}},
            temperature=temperature,
        )
    except (openai.OpenAIError, *TRANSPORT_ERRORS) as error:
        raise _translate(error) from error
    message = response.choices[0].message if response.choices else None
    calls = (message.tool_calls if message else None) or []
    if not calls:
        raise LLMError("invalid", f"The model did not call {name}.")
    try:
        arguments = json.loads(calls[0].function.arguments or "{}")
    except json.JSONDecodeError as error:
        raise LLMError("invalid", f"The model's {name} arguments are not JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise LLMError("invalid", f"The model's {name} arguments are not an object.")
    usage = response.usage
    return ToolAnswer(
        name=name,
        arguments=arguments,
        usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        model=response.model or model,
    )


def embed(texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
    """Embeddings from the endpoint's /embeddings, in the order of `texts`."""
    try:
        response = sync_client().embeddings.create(
            model=model or settings.EMBEDDING_MODEL, input=list(texts)
        )
    except (openai.OpenAIError, *TRANSPORT_ERRORS) as error:
        raise _translate(error) from error
    return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


@dataclass
class ModerationResult:
    flagged: bool
    categories: list[str]


async def moderate(text: str) -> ModerationResult | None:
    """The provider's moderation verdict, or None when it has no moderation endpoint (local
    servers answer 404) or it failed: the caller then falls back to its own rules."""
    try:
        response = await (await async_client()).moderations.create(
            model=settings.MODERATION_MODEL, input=text
        )
    except (openai.OpenAIError, *TRANSPORT_ERRORS) as error:
        logger.info("moderation endpoint unavailable: %s", type(error).__name__)
        return None
    result = response.results[0]
    categories = [name for name, hit in result.categories.model_dump().items() if hit]
    return ModerationResult(flagged=bool(result.flagged), categories=sorted(categories))

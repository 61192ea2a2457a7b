"""One interviewer turn: from the participant's saved message to the interviewer's saved reply.

Shared by the websocket consumer (which relays the reply as it streams) and the plain HTTP form
(which waits for the whole reply, for browsers without websockets). The reply is saved as it
arrives, so a failure at any point keeps what came, marked partial, with a retry offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.translation import gettext as _

from elicit import llm, moderation, scripted, services
from elicit.cards import CARD_TOOL, CardDraft, InvalidCard, parse_tool_arguments
from elicit.models import Interview, Message

logger = logging.getLogger(__name__)


# Set while a synchronous view waits for a reply (the no-JavaScript form): its database work then
# runs back in the view's own thread, on its connection and inside its transaction.
_CALLED_FROM_SYNC: ContextVar[bool] = ContextVar("called_from_sync", default=False)


def in_database(function):
    """Run a synchronous database function from async code.

    With PostgreSQL, in a pool of INTERVIEW_DB_THREADS threads: Channels' default funnels every
    call of the process through one thread, and at hundreds of concurrent interviews a
    participant's first token then waits behind other streams' saves; each call here is a
    self-contained unit of work. The threads are the process's own, not the event loop's
    default pool (sized by the number of cores): their number is what the interviews may take
    from the database pool, which HTTP_CONCURRENCY leaves them. SQLite has a single writer
    anyway, so there the calls stay on one thread rather than wait on the file lock."""
    if _CALLED_FROM_SYNC.get():
        # The view's request manages its connection; Channels' wrapper would close it midway.
        return sync_to_async(function, thread_sensitive=True)
    if connection.vendor == "sqlite":
        return database_sync_to_async(function)
    return sync_to_async(
        _giving_back_its_connection(function), thread_sensitive=False, executor=_database_threads()
    )


@functools.cache
def _database_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.INTERVIEW_DB_THREADS, thread_name_prefix="interview-db")


def _giving_back_its_connection(function):
    """The function, returning the connection it took to the pool when done.

    Channels' database_sync_to_async does this too, but its test communicator turns it off
    (for its single thread, where tests hold transactions): the pool's threads then kept their
    connections, which left with them when a test's event loop closed, and after a few hundred
    websocket tests PostgreSQL's pool ran dry."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return call


def reply_blocking(interview_id: int) -> Message | None:
    """The reply for a synchronous caller (a plain form post): wait for all of it."""
    token = _CALLED_FROM_SYNC.set(True)
    try:
        return async_to_sync(reply)(interview_id)
    finally:
        _CALLED_FROM_SYNC.reset(token)


FLUSH_SECONDS = 0.04  # coalesce tokens into frames at most this old: text flows, never lumps
# How often the writer of a reply tells the database it is alive, saving what came so far (a
# crash loses at most this much). Well below STALE_REPLY_SECONDS, after which a reply whose
# writer stopped beating counts as cut off.
HEARTBEAT_SECONDS = 1.0


class Sink(Protocol):
    """Where a turn reports as it goes (the websocket); every method may be a no-op."""

    async def started(self, message: Message) -> None: ...
    async def delta(self, message: Message, text: str) -> None: ...
    async def finished(self, message: Message) -> None: ...


class NullSink:
    async def started(self, message: Message) -> None:
        return None

    async def delta(self, message: Message, text: str) -> None:
        return None

    async def finished(self, message: Message) -> None:
        return None


def failure_text(error: llm.LLMError) -> str:
    messages = {
        "timeout": _("The interviewer took too long to answer."),
        "rate_limited": _("The interviewer is very busy right now."),
        "unavailable": _("The interviewer is not reachable right now."),
        "broken_stream": _("The interviewer's reply broke off."),
        "refused": _("The interviewer could not answer this message."),
        "invalid": _("The interviewer could not write a valid card."),
    }
    return (
        messages.get(error.kind, _("Something went wrong with the interviewer."))
        + " "
        + _("Nothing you wrote is lost. Press “Try again”.")
    )


@dataclass
class _Stream:
    content: str = ""
    pending: str = ""
    last_flush: float = 0.0
    saved: str | None = None  # the content the last heartbeat saved
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Heartbeats:
    """While replies are written, touch their rows every HEARTBEAT_SECONDS with what came so
    far, so that other servers know a live server is writing them (services.beat_replies). It
    beats whether or not tokens arrive: a slow model is not a dead server.

    One per event loop for all the replies a server writes: a single database call a second
    however many replies stream, instead of one per reply (at hundreds of streams those calls
    queued in front of participants' first tokens). A reply written for a synchronous view has
    one of its own, on the view's connection. The beating task stops, never cancelled, when
    the last reply leaves, so that a beat is never cut off in the middle of its database call."""

    def __init__(self) -> None:
        self.replies: dict[int, _Stream] = {}
        self.emptied = asyncio.Event()
        self.task: asyncio.Task | None = None

    @classmethod
    def for_this_reply(cls) -> _Heartbeats:
        if _CALLED_FROM_SYNC.get():
            return cls()
        loop = asyncio.get_running_loop()
        if loop not in _HEARTBEATS:
            _HEARTBEATS[loop] = cls()
        return _HEARTBEATS[loop]

    def add(self, message_id: int, state: _Stream) -> None:
        self.replies[message_id] = state
        if self.task is None or self.task.done():
            self.emptied.clear()
            self.task = asyncio.create_task(self._run())

    async def remove(self, message_id: int) -> None:
        self.replies.pop(message_id, None)
        if not self.replies and self.task is not None:
            self.emptied.set()
            await self.task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.emptied.wait(), HEARTBEAT_SECONDS)
            self.emptied.clear()
            if not self.replies:
                return
            await self._beat()

    async def _beat(self) -> None:
        beating = [
            (message_id, state, None if state.content == state.saved else state.content)
            for message_id, state in self.replies.items()
        ]
        try:
            await in_database(services.beat_replies)(
                progress={message_id: content for message_id, _state, content in beating}
            )
        except Exception:  # the database is away for a moment: beat again later
            logger.warning("heartbeat of %d replies failed", len(beating), exc_info=True)
            return
        for _id, state, content in beating:
            if content is not None:
                state.saved = content


_HEARTBEATS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Heartbeats] = (
    weakref.WeakKeyDictionary()
)


async def reply(
    interview_id: int, sink: Sink | None = None, prepared: services.PreparedReply | None = None
) -> Message | None:
    """Produce and save the interviewer's reply to the conversation so far. Returns None when
    no reply is due (e.g. a resent message that was already answered)."""
    sink = sink or NullSink()
    if prepared is None:
        prepared = await in_database(services.start_reply)(interview_id=interview_id)
    if prepared is None:
        return None
    if prepared.interview.interviewer == Interview.Interviewer.SCRIPTED:
        return await _scripted_reply(prepared, sink)
    return await _llm_reply(prepared, sink)


async def _scripted_reply(prepared: services.PreparedReply, sink: Sink) -> Message:
    answers = prepared.scripted_answers
    card: CardDraft | None = None
    if scripted.is_card_due(answers):
        card = scripted.assemble_card(answers)
        text = scripted.card_ready_message()
    else:
        text = scripted.next_turn(answers) or scripted.after_card_message()
    message = prepared.message
    await sink.started(message)
    await sink.delta(message, text)
    message = await in_database(services.finish_reply)(
        message_id=message.pk, content=text, status=Message.Status.COMPLETE, card=card
    )
    await sink.finished(message)
    return message


async def _llm_reply(prepared: services.PreparedReply, sink: Sink) -> Message:
    message = prepared.message
    await sink.started(message)
    state = _Stream(last_flush=time.monotonic())
    heartbeats = _Heartbeats.for_this_reply()
    heartbeats.add(message.pk, state)
    try:
        return await _write_reply(prepared, sink, state)
    finally:
        await heartbeats.remove(message.pk)


async def _write_reply(prepared: services.PreparedReply, sink: Sink, state: _Stream) -> Message:
    messages = prepared.llm_messages
    model = prepared.interview.model
    message = prepared.message
    card: CardDraft | None = None
    try:
        for attempt in range(2):  # an invalid card is answered with the error and retried once
            call = await _stream_once(messages, model, message, state, sink)
            if call is None:
                break
            try:
                card = parse_tool_arguments(call.arguments)
                break
            except InvalidCard as invalid:
                logger.info("invalid card from the model (attempt %d): %s", attempt + 1, invalid)
                if attempt == 1:
                    raise llm.LLMError("invalid", str(invalid)) from invalid
                messages = [
                    *messages,
                    {
                        "role": "assistant",
                        "content": state.content or None,
                        "tool_calls": [
                            {
                                "id": call.id or "call_card",
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments},
                            }
                        ],
                    },
                    {
                        "role": "tool",
                        "tool_call_id": call.id or "call_card",
                        "content": (
                            f"The card was not accepted: {invalid}. Call submit_values_card "
                            "again with a corrected card."
                        ),
                    },
                ]
    except llm.LLMError as error:
        await _flush(message, state, sink)
        status = Message.Status.PARTIAL if state.content else Message.Status.FAILED
        message = await in_database(services.finish_reply)(
            message_id=message.pk,
            content=state.content,
            status=status,
            error=failure_text(error),
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
        )
        await sink.finished(message)
        return message
    await _flush(message, state, sink)
    message = await in_database(services.finish_reply)(
        message_id=message.pk,
        content=state.content,
        status=Message.Status.COMPLETE,
        card=card,
        prompt_tokens=state.prompt_tokens,
        completion_tokens=state.completion_tokens,
    )
    await sink.finished(message)
    return message


async def _stream_once(
    messages: list[dict], model: str, message: Message, state: _Stream, sink: Sink
) -> llm.ToolCall | None:
    """One streamed completion; returns the card tool call if the model made one."""
    card_call: llm.ToolCall | None = None
    first = not state.content
    async for event in llm.stream_chat(messages, model=model, tools=[CARD_TOOL]):
        if isinstance(event, llm.TextDelta):
            state.content += event.text
            state.pending += event.text
            now = time.monotonic()
            if first or now - state.last_flush >= FLUSH_SECONDS:
                first = False
                await _flush(message, state, sink)
        elif isinstance(event, llm.ToolCall):
            if event.name == CARD_TOOL["function"]["name"]:
                card_call = event
        elif isinstance(event, llm.Usage):
            state.prompt_tokens += event.prompt_tokens
            state.completion_tokens += event.completion_tokens
    return card_call


async def _flush(message: Message, state: _Stream, sink: Sink) -> None:
    if state.pending:
        text, state.pending = state.pending, ""
        state.last_flush = time.monotonic()
        await sink.delta(message, text)


async def check_before_reply(message: Message, interview: Interview) -> bool:
    """For deliberations that stop an interview on a flagged message: check now, before the
    interviewer answers. Returns False when the interview was stopped."""
    verdict = await moderation.check(message.content)
    if verdict is None or not verdict.flagged:
        return True
    await in_database(services.flag)(
        target=message,
        deliberation_id=interview.participant.deliberation_id,
        source="automatic",
        reason=verdict.reasons[0] if verdict.reasons else "flagged",
        detail=f"{verdict.source}: {', '.join(verdict.reasons)}",
    )
    await in_database(services.block_interview)(interview=interview)
    return False

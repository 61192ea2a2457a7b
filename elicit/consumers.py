"""The interview websocket. Thin: check who is connecting, call services, relay the reply.

Frames are HTML fragments for htmx's websocket extension (hx-swap-oob), rendered from the same
partials as the page, so a reload and a live update show the same thing. The reply is produced in
a task that outlives the socket: if the participant's connection drops mid-reply, the reply is
still saved, and the reconnected page catches up from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from elicit import interviewer, ratelimit, services, views
from elicit.forms import CardForm
from elicit.models import Deliberation, Interview, Message, Participant

logger = logging.getLogger(__name__)

TEMPLATE = "elicit/interview.html"


def group_name(interview_id: int) -> str:
    return f"interview-{interview_id}"


class InterviewConsumer(AsyncWebsocketConsumer):
    interview: Interview
    turn: asyncio.Task | None = None
    watcher: asyncio.Task | None = None

    async def connect(self) -> None:
        interview_id = int(self.scope["url_route"]["kwargs"]["interview_id"])
        interview = await self.authorised_interview(interview_id)
        if interview is None:
            await self.close(code=4403)  # not this participant's interview
            return
        if await self.over_write_limit(interview):
            await self.close(code=4429)  # reconnecting in a loop: the client backs off
            return
        self.interview = interview
        self.closed = False
        await self.channel_layer.group_add(group_name(interview_id), self.channel_name)
        await self.accept()
        await self.send_state()

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.watcher is not None:
            self.watcher.cancel()
        if hasattr(self, "interview"):
            await self.channel_layer.group_discard(group_name(self.interview.pk), self.channel_name)
        # The reply task is not cancelled: it finishes and saves the reply for the next visit.

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        try:
            data = json.loads(text_data or "{}")
        except json.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if data.get("action") == "retry":
            limited = await self.over_write_limit(self.interview)
            if limited is not None:
                await self.send_composer_error(limited.message)
            else:
                self.start_turn()
            return
        blocking = self.interview.participant.deliberation.block_flagged_messages
        if self.turn is not None and not self.turn.done():
            blocking = True  # a reply is still being written: just record, do not start one
        try:
            message, created, prepared = await interviewer.in_database(services.take_message)(
                interview=self.interview,
                text=str(data.get("message", "")),
                client_id=str(data.get("client_id", "")),
                address=self.address(),
                start=not blocking,
                count_write=True,
                queue_check=False,  # queued below, once the reply is on its way
            )
        except services.ParticipationError as error:
            await self.send_composer_error(str(error))
            return
        if created:
            await self.send(text_data=self.echo(message))
        if self.interview.participant.deliberation.block_flagged_messages:
            allowed = await interviewer.check_before_reply(message, self.interview)
            if not allowed:
                await self.send_state()
                return
        self.start_turn(prepared)
        if created and not self.interview.participant.deliberation.block_flagged_messages:
            # Checked in the background; sent to the broker while the reply starts, not before.
            await interviewer.in_database(services.queue_moderation)(message)

    # --- the reply -------------------------------------------------------------------------------

    def start_turn(self, prepared: services.PreparedReply | None = None) -> None:
        """Start the reply in a task that outlives the socket. A turn asked for while the
        previous one is still finishing (its last frame is out, its bookkeeping not yet) runs
        after it; the database decides whether a reply is still due."""
        self.turn = asyncio.create_task(self.run_turn(prepared, previous=self.turn))

    async def run_turn(
        self, prepared: services.PreparedReply | None = None, previous: asyncio.Task | None = None
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        try:
            message = await interviewer.reply(self.interview.pk, sink=self, prepared=prepared)
        except Exception:
            logger.exception("interview %s: the reply failed", self.interview.pk)
            message = None
        if message is not None:
            try:
                await self.channel_layer.group_send(
                    group_name(self.interview.pk),
                    {"type": "interview.refresh", "sender": self.channel_name},
                )
            except Exception:  # other tabs catch up on their next reconnect
                logger.warning("interview %s: could not tell other tabs", self.interview.pk)

    async def started(self, message: Message) -> None:
        await self.safe_send(self.render("streaming", {"message": message}))

    async def delta(self, message: Message, text: str) -> None:
        await self.safe_send(
            format_html('<span hx-swap-oob="beforeend:#m-{}-body">{}</span>', message.pk, text)
        )

    async def finished(self, message: Message) -> None:
        """The saved reply replaces the streamed one (so a lost frame cannot leave a gap), and
        the controls follow its outcome. Rendered from what the turn already holds: no extra
        trip to the database. The card form is re-rendered only when a new card came, so that
        edits the participant is making to the current one are not overwritten."""
        interview = message.interview
        context = {
            "message": message,
            "interview": interview,
            "deliberation": interview.participant.deliberation,
            "waiting": False,
            "can_retry": message.status in {Message.Status.PARTIAL, Message.Status.FAILED},
            "client_id": services.new_client_id(),
            "include_card": bool(message.tool_call),
            "card_form": CardForm.for_draft(interview.draft_card),
        }
        await self.safe_send(self.render("final", context))

    async def interview_refresh(self, event: dict) -> None:
        """Another connection to this interview (another tab or server) finished a reply."""
        if event.get("sender") != self.channel_name:
            await self.send_state(include_card=False)

    # --- rendering -------------------------------------------------------------------------------

    async def send_state(self, *, include_card: bool = True) -> None:
        """Everything the page shows, replaced whole: the catch-up after a (re)connect."""
        html, streaming = await interviewer.in_database(self.render_state)(include_card)
        await self.safe_send(html)
        if streaming is not None:
            self.watch(streaming)

    def render_state(self, include_card: bool) -> tuple[str, int | None]:
        """The state's HTML, and the id of a reply it shows as still being written."""
        interview = Interview.objects.select_related("question", "participant__deliberation").get(
            pk=self.interview.pk
        )
        self.interview = interview
        context = views.interview_context(interview)
        context.update(oob=True, include_card=include_card)
        last = context["messages_"][-1] if context["messages_"] else None
        streaming = last.pk if last is not None and context["waiting"] else None
        return render_to_string(TEMPLATE + "#state", context), streaming

    # --- a reply written elsewhere ---------------------------------------------------------------

    def watch(self, message_id: int) -> None:
        """The page shows a reply as being written, but not by this connection: typically the
        page has just reconnected here because the server writing it went away. Watch it: when
        it is no longer being written (its writer's heartbeat stopped, see services), show the
        page as it now stands, with the reply marked as cut off and "Try again", without
        waiting for a reload; or, when a live server finished it, the finished reply (with its
        card, which interview_refresh leaves out)."""
        if self.turn is not None and not self.turn.done():
            return  # this connection writes it: its own frames follow
        current = asyncio.current_task()
        if self.watcher is not None and not self.watcher.done() and self.watcher is not current:
            return
        self.watcher = asyncio.create_task(self.watch_reply(message_id))

    async def watch_reply(self, message_id: int) -> None:
        while not self.closed:
            await asyncio.sleep(interviewer.HEARTBEAT_SECONDS)
            try:
                message = await interviewer.in_database(services.reply_as_it_stands)(
                    message_id=message_id
                )
            except Exception:  # the database is away for a moment: look again later
                logger.warning("interview %s: could not check a reply", self.interview.pk)
                continue
            if message.status != Message.Status.STREAMING:
                await self.send_state(include_card=bool(message.tool_call))
                return

    async def send_composer_error(self, text: str) -> None:
        """A notice above the composer, which keeps what the participant typed."""
        await self.send(text_data=self.render("composer_error", {"composer_error": text}))

    def render(self, partial: str, context: dict) -> str:
        return render_to_string(f"{TEMPLATE}#{partial}", {**context, "oob": True})

    def echo(self, message: Message) -> str:
        return self.render("echo", {"message": message, "client_id": services.new_client_id()})

    async def safe_send(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self.send(text_data=text)
        except Exception:  # the socket went away between the check and the send
            self.closed = True

    # --- access ----------------------------------------------------------------------------------

    def address(self) -> str:
        return ratelimit.scope_address(self.scope)

    async def over_write_limit(self, interview: Interview) -> ratelimit.Limited | None:
        """Counted in the database's threads, not on the event loop: a round trip to Redis
        there would hold up every stream of the process (and it waits for the GIL on the way
        back while those threads run)."""
        return await interviewer.in_database(ratelimit.check_write)(
            participant_id=interview.participant_id, address=self.address()
        )

    async def authorised_interview(self, interview_id: int) -> Interview | None:
        return await interviewer.in_database(self._authorised_interview)(interview_id)

    def _authorised_interview(self, interview_id: int) -> Interview | None:
        """The interview, if the session's participant owns it."""
        session = self.scope.get("session")
        if session is None:
            return None
        interview = (
            Interview.objects.select_related("question", "participant__deliberation")
            .filter(pk=interview_id)
            .first()
        )
        if interview is None:
            return None
        deliberation: Deliberation = interview.participant.deliberation
        participant: Participant | None = services.session_participant(session, deliberation)
        if participant is None or participant.pk != interview.participant_id:
            return None
        return interview

"""Business logic of the participant side: joining a deliberation, interviews, messages, cards.

Typed functions with keyword-only arguments, atomic, with side effects (signals that start
background work) sent only when the transaction commits. Views and consumers call these and do
nothing of substance themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Max,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from elicit import llm, ratelimit, scripted
from elicit.cards import CardDraft, clean_text, validate_card
from elicit.models import (
    CardRevision,
    Deliberation,
    Interview,
    Invite,
    Message,
    ModerationFlag,
    Participant,
    Question,
    ValuesCard,
)

# Sent (on commit) when a participant confirmed a card; graph/ starts deduplication from it.
card_confirmed = Signal()  # sender=ValuesCard, card=ValuesCard

SESSION_KEY = "participants"  # {deliberation id: participant id}


class ParticipationError(Exception):
    """Shown to the participant as is: what went wrong and what to do."""


# --- Joining ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelIds:
    pid: str = ""
    study_id: str = ""
    session_id: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PanelIds:
        """Prolific's PROLIFIC_PID / STUDY_ID / SESSION_ID, or a generic `pid`."""

        def get(*names: str) -> str:
            for name in names:
                value = clean_text(query.get(name, ""))[:128]
                if value:
                    return value
            return ""

        return cls(
            pid=get("PROLIFIC_PID", "pid"),
            study_id=get("STUDY_ID", "study_id"),
            session_id=get("SESSION_ID", "session_id"),
        )


def request_deliberation(request, slug: str) -> Deliberation | None:
    """The deliberation a URL names (of any status), read once per request: the rate limit
    and the view both need it."""
    memo = request.__dict__.setdefault("_deliberations", {})
    if slug not in memo:
        memo[slug] = Deliberation.objects.filter(slug=slug).first()
    return memo[slug]


def session_participant(session: Mapping, deliberation: Deliberation) -> Participant | None:
    """The participant this browser joined as. Erasure forgets every session of a participant:
    an erased participant is nobody's any more."""
    participant_id = (session.get(SESSION_KEY) or {}).get(str(deliberation.pk))
    if participant_id is None:
        return None
    participant = Participant.objects.filter(
        pk=participant_id, deliberation=deliberation, erased_at__isnull=True
    ).first()
    if participant is not None:
        participant.deliberation = deliberation  # the same row: not read again
    return participant


def forget_participant(session, deliberation: Deliberation) -> None:
    known = dict(session.get(SESSION_KEY) or {})
    known.pop(str(deliberation.pk), None)
    session[SESSION_KEY] = known


def erased_panel_pid(deliberation_id: int, pid: str) -> str:
    """What an erased participant's panel id becomes: a keyed digest, so that the same panel id
    cannot take part a second time (one person, one participant) while the id itself is gone.
    Without the server's secret key it cannot be turned back into the id."""
    digest = salted_hmac("erased-panel-pid", f"{deliberation_id}:{pid}", algorithm="sha256")
    return "erased:" + digest.hexdigest()[:48]


def remember_participant(session, participant: Participant) -> None:
    known = dict(session.get(SESSION_KEY) or {})
    known[str(participant.deliberation_id)] = participant.pk
    session[SESSION_KEY] = known


def find_panel_participant(*, deliberation: Deliberation, panel: PanelIds) -> Participant | None:
    if not panel.pid:
        return None
    return Participant.objects.filter(
        deliberation=deliberation,
        panel_pid__in=[panel.pid, erased_panel_pid(deliberation.pk, panel.pid)],
    ).first()


ERASED_REJOIN = gettext_lazy(
    "You took part before and your data was deleted, so you cannot take part again. "
    "Thank you for your interest."
)


def join(
    *,
    deliberation: Deliberation,
    panel: PanelIds,
    invite_token: str = "",
    demographics: Mapping[str, str] | None = None,
) -> Participant:
    """Create the participant who just consented, or resume the one with the same panel id
    (one person, one participant). Closed deliberations accept only invite links."""
    if deliberation.status != Deliberation.Status.OPEN:
        raise ParticipationError(_("This deliberation is not accepting new participants."))
    existing = find_panel_participant(deliberation=deliberation, panel=panel)
    if existing is not None:
        if existing.erased_at is not None:
            raise ParticipationError(ERASED_REJOIN)
        return existing
    invite = None
    if invite_token:
        invite = Invite.objects.filter(deliberation=deliberation, token=invite_token).first()
        if invite is None:
            raise ParticipationError(_("This invite link is not valid."))
        used_by = Participant.objects.filter(invite=invite).first()
        if used_by is not None:
            return used_by  # the invitee coming back, perhaps from another device
    elif deliberation.access == Deliberation.Access.INVITE:
        raise ParticipationError(_("This deliberation is by invitation only."))
    try:
        with transaction.atomic():
            return Participant.objects.create(
                deliberation=deliberation,
                panel_pid=panel.pid,
                panel_study_id=panel.study_id,
                panel_session_id=panel.session_id,
                invite=invite,
                demographics=dict(demographics or {}),
                consented_at=timezone.now(),
                last_seen_at=timezone.now(),
            )
    except IntegrityError:
        # The same panel id or invite arrived twice at once: the first one wins, both resume it.
        participant = find_panel_participant(deliberation=deliberation, panel=panel)
        if participant is None and invite is not None:
            participant = Participant.objects.filter(invite=invite).first()
        if participant is None:
            raise
        return participant


# --- Interviews ---------------------------------------------------------------------------------


def pick_question(*, participant: Participant, slug: str = "") -> Question:
    """The question the link names, else the participant's unfinished one, else the active
    question with the fewest cards and interviews so far (coverage spreads evenly)."""
    questions = Question.objects.filter(deliberation_id=participant.deliberation_id, is_active=True)
    if slug:
        named = questions.filter(slug=slug).first()
        if named is not None:
            return named
    unfinished = (
        Interview.objects.filter(participant=participant)
        .exclude(status=Interview.Status.COMPLETED)
        .select_related("question")
        .first()
    )
    if unfinished is not None:
        return unfinished.question
    question = (
        questions.annotate(load=Count("interviews", distinct=True))
        .order_by("load", "position", "id")
        .first()
    )
    if question is None:
        raise ParticipationError(_("This deliberation has no questions yet."))
    return question


def opening_text(question: Question) -> str:
    return llm.load_prompt("opening").text.replace("{question}", question.text.strip())


@transaction.atomic
def start_interview(*, participant: Participant, question: Question) -> Interview:
    """The participant's interview on the question, created with the opening if new."""
    interview = Interview.objects.filter(participant=participant, question=question).first()
    if interview is not None:
        return interview
    deliberation = participant.deliberation
    if llm.is_configured():
        interviewer = Interview.Interviewer.LLM
        model = deliberation.llm_model or settings.LLM_MODEL
        prompt_version = llm.load_prompt("interviewer").version
    else:
        interviewer, model = Interview.Interviewer.SCRIPTED, ""
        prompt_version = scripted.PROMPT_VERSION
    try:
        with transaction.atomic():
            interview = Interview.objects.create(
                participant=participant,
                question=question,
                interviewer=interviewer,
                model=model,
                prompt_version=prompt_version,
            )
    except IntegrityError:  # two tabs started it at once
        return Interview.objects.get(participant=participant, question=question)
    Message.objects.create(
        interview=interview,
        seq=0,
        role=Message.Role.INTERVIEWER,
        content=opening_text(question),
        prompt_version=llm.load_prompt("opening").version,
    )
    return interview


# --- Replies cut off by a server that died -------------------------------------------------------
#
# The server writing a reply touches its row every second (`beat_replies`, called by the
# writers' heartbeat in elicit/interviewer.py: one statement for all the replies of a server),
# whether or not tokens are arriving: a model that thinks for a minute before its first token
# keeps its reply alive. A streaming reply whose row
# was not touched for STALE_REPLY_SECONDS has no live writer any more: its server died or lost
# the database. Times are the database's own clock, so web servers whose clocks disagree cannot
# declare each other's replies dead.


def _abandoned() -> Q:
    cutoff = Now() - timedelta(seconds=settings.STALE_REPLY_SECONDS)
    return Q(status=Message.Status.STREAMING, updated_at__lt=cutoff)


def _settle(messages) -> int:
    return messages.filter(_abandoned()).update(
        status=Message.Status.PARTIAL,
        error=_("The reply was interrupted. Nothing you wrote is lost. Press “Try again”."),
    )


def settle_stale_replies(interview: Interview) -> None:
    """Mark the interview's replies that nobody writes any more as partial, so the
    participant is offered a retry."""
    _settle(Message.objects.filter(interview=interview))


def reply_as_it_stands(*, message_id: int) -> Message:
    """A reply being written elsewhere, as it stands: settled first if its writer is gone.
    For a page that watches another server's reply (elicit/consumers.py)."""
    _settle(Message.objects.filter(pk=message_id))
    return Message.objects.only("status", "tool_call").get(pk=message_id)


def transcript(interview: Interview) -> list[Message]:
    """The interview as the participant sees it."""
    settle_stale_replies(interview)
    return list(interview.messages.filter(hidden_at__isnull=True).order_by("seq"))


def new_client_id() -> str:
    """Idempotency key for the participant's next message (a resend is stored once)."""
    return uuid.uuid4().hex


class MessageRejected(ParticipationError):
    pass


class TooFast(MessageRejected):
    """Over MESSAGES_PER_MINUTE: answered with 429 rather than 422."""


def validate_message_text(text: str) -> str:
    cleaned = clean_text(text or "")
    if not cleaned:
        raise MessageRejected(_("Your message is empty."))
    if len(cleaned) > settings.MESSAGE_MAX_CHARS:
        raise MessageRejected(
            _(
                "Your message is %(length)d characters long; the limit is %(limit)d. "
                "Please shorten it."
            )
            % {"length": len(cleaned), "limit": settings.MESSAGE_MAX_CHARS}
        )
    return cleaned


def can_send(interview: Interview) -> bool:
    return interview.status in {Interview.Status.ACTIVE, Interview.Status.CARD_PROPOSED}


def reply_in_progress(interview: Interview) -> bool:
    """A reply is being written by a live server (see `_abandoned`)."""
    return interview.messages.filter(status=Message.Status.STREAMING).exclude(_abandoned()).exists()


def record_participant_message(
    *, interview: Interview, text: str, client_id: str = "", address: str = ""
) -> tuple[Message, bool]:
    """Save the participant's message before anything else happens. Returns (message,
    created): a message resent with the same client id is stored once."""
    message, created, _prepared = take_message(
        interview=interview, text=text, client_id=client_id, address=address, start=False
    )
    return message, created


def begin_reply(*, interview: Interview) -> Message | None:
    """An empty interviewer message, marked streaming, filled as the reply arrives. None when
    no reply is due or another one is already being written (two tabs, a resent message)."""
    with transaction.atomic():
        # Lock the interview row so that two servers cannot both start a reply.
        Interview.objects.select_for_update().filter(pk=interview.pk).first()
        settle_stale_replies(interview)
        if reply_in_progress(interview) or not needs_reply(interview):
            return None
        seq = (interview.messages.aggregate(m=Max("seq"))["m"] or 0) + 1
        return Message.objects.create(
            interview=interview,
            seq=seq,
            role=Message.Role.INTERVIEWER,
            status=Message.Status.STREAMING,
            model=interview.model,
            prompt_version=interview.prompt_version,
        )


@dataclass
class PreparedReply:
    """Everything a reply needs, gathered in one database round trip."""

    interview: Interview
    message: Message
    llm_messages: list[dict]
    scripted_answers: list[str]


def start_reply(*, interview_id: int) -> PreparedReply | None:
    """Begin the interviewer's reply, or None when none is due. One call, so that the async
    side crosses into the database thread once per reply rather than once per query."""
    interview = Interview.objects.select_related("question", "participant__deliberation").get(
        pk=interview_id
    )
    message = begin_reply(interview=interview)
    if message is None:
        return None
    shown = list(interview.messages.filter(hidden_at__isnull=True).order_by("seq"))
    return _prepared(interview, message, shown)


def _prepared(interview: Interview, reply: Message, shown: list[Message]) -> PreparedReply:
    """What the reply needs, from the messages the participant sees (oldest first)."""
    if interview.interviewer == Interview.Interviewer.SCRIPTED:
        answers = [m.content for m in shown if m.role == Message.Role.PARTICIPANT]
        return PreparedReply(
            interview=interview, message=reply, llm_messages=[], scripted_answers=answers
        )
    return PreparedReply(
        interview=interview,
        message=reply,
        llm_messages=llm_messages(interview, shown),
        scripted_answers=[],
    )


def take_message(
    *,
    interview: Interview,
    text: str,
    client_id: str = "",
    address: str = "",
    start: bool = True,
    count_write: bool = False,
    queue_check: bool = True,
) -> tuple[Message, bool, PreparedReply | None]:
    """Save the participant's message and, in the same transaction, begin the reply to it
    (unless `start` is false). Returns (message, created, prepared reply or None). With
    `count_write`, the message also counts as one of the participant's writes
    (ratelimit.write_keys), in the same round trip to the cache as the message limit: the
    websocket's path, which otherwise hands over to a database thread twice before the model
    is asked.

    This is the path of every message in a live interview, right before the participant waits
    for the first token, so it reads the interview's messages once and works from that list:
    the resend check, the reply in progress, the next seq and the model's transcript; the
    message and its reply are inserted together (five statements with the transaction's own,
    where the first version took seventeen; see bench/interviews.py). With `queue_check`
    false, the caller queues the message's moderation check itself (`queue_moderation`): the
    websocket does it once the reply has started, not before the first token."""
    # The limits, counted in one round trip and before the interview's row is locked: the
    # participant's writes (with `count_write`) and their messages. A message refused below
    # (empty, a resend, while a reply is being written) still counts as one sent.
    writes = (
        ratelimit.write_keys(participant_id=interview.participant_id, address=address)
        if count_write
        else []
    )
    limit = settings.MESSAGES_PER_MINUTE
    sent = [(f"msg:p:{interview.participant_id}", ratelimit.MINUTE, limit)]
    if address:
        sent.append((f"msg:a:{address}", ratelimit.MINUTE, limit * 20))
    too_many_writes, too_many_messages = ratelimit.count_all(writes, sent)
    if too_many_writes is not None:
        raise TooFast(too_many_writes.message)
    if too_many_messages is not None:
        raise TooFast(_("You are sending messages very fast. Please wait a minute."))
    cleaned = validate_message_text(text)
    client_id = clean_text(client_id)[:64]
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _take_message(interview, cleaned, client_id, start, queue_check)
        except IntegrityError:
            continue  # another server took the same seq (or client id) first: look again
    raise MessageRejected(_("Your message could not be saved. Please send it again."))


def _history(interview: Interview) -> list[Message]:
    """All the interview's messages, oldest first, each marked whether it is a reply nobody
    writes any more (`_abandoned`, on the database's clock)."""
    abandoned = ExpressionWrapper(_abandoned(), output_field=BooleanField())
    return list(interview.messages.annotate(abandoned=abandoned).order_by("seq"))


def _take_message(
    interview: Interview, cleaned: str, client_id: str, start: bool, queue_check: bool
) -> tuple[Message, bool, PreparedReply | None]:
    # Lock the interview row so that two servers cannot both start a reply; read its status.
    status = (
        Interview.objects.select_for_update()
        .filter(pk=interview.pk)
        .values_list("status", flat=True)
        .first()
    )
    if status is not None:
        interview.status = status
    history = _history(interview)
    if client_id:
        for existing in history:
            if existing.client_id == client_id:
                return existing, False, None
    if not can_send(interview):
        raise MessageRejected(_("This interview is finished."))
    streaming = [m for m in history if m.status == Message.Status.STREAMING]
    if any(not m.abandoned for m in streaming):
        raise MessageRejected(_("Please wait until the interviewer has finished replying."))
    if streaming:  # left by a server that died mid-reply
        settle_stale_replies(interview)
        history = _history(interview)
    seq = (history[-1].seq if history else 0) + 1
    message = Message(
        interview=interview,
        seq=seq,
        role=Message.Role.PARTICIPANT,
        content=cleaned,
        client_id=client_id,
    )
    reply = None
    if start:
        reply = Message(
            interview=interview,
            seq=seq + 1,
            role=Message.Role.INTERVIEWER,
            status=Message.Status.STREAMING,
            model=interview.model,
            prompt_version=interview.prompt_version,
        )
    Message.objects.bulk_create([message] if reply is None else [message, reply])  # one INSERT
    _note_seen(interview.participant)
    if queue_check and not interview.participant.deliberation.block_flagged_messages:
        # Checked in the background; with blocking on, the consumer checks first.
        transaction.on_commit(partial(queue_moderation, message))
    if reply is None:
        return message, True, None
    shown = [m for m in history if m.hidden_at is None] + [message]
    return message, True, _prepared(interview, reply, shown)


SEEN_PRECISION = timedelta(minutes=1)


def _note_seen(participant: Participant) -> None:
    """Record when the participant was last active, to the minute (it is shown in their data
    export): not a write on every message."""
    now = timezone.now()
    if participant.last_seen_at is None or now - participant.last_seen_at >= SEEN_PRECISION:
        Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)
        # Remembered once written for good: a transaction rolled back (and retried) writes again.
        transaction.on_commit(partial(setattr, participant, "last_seen_at", now))


def beat_replies(*, progress: Mapping[int, str | None]) -> int:
    """The writers' heartbeat: each reply in *progress* is still being written, with the
    content so far (None: unchanged since the last beat). One statement for all the replies a
    server writes. Replies no longer streaming (finished, or settled as interrupted by a server
    that thought their writer dead) are left alone. Returns how many rows were touched."""
    if not progress:
        return 0
    fields: dict = {"updated_at": Now()}
    changed = [When(pk=pk, then=Value(text)) for pk, text in progress.items() if text is not None]
    if changed:
        fields["content"] = Case(*changed, default=F("content"), output_field=TextField())
    return Message.objects.filter(pk__in=list(progress), status=Message.Status.STREAMING).update(
        **fields
    )


@transaction.atomic
def finish_reply(
    *,
    message_id: int,
    content: str,
    status: str,
    error: str = "",
    card: CardDraft | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> Message:
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("interview__participant__deliberation")
        .get(pk=message_id)
    )
    message.content = content
    message.status = status
    message.error = error
    message.prompt_tokens = prompt_tokens
    message.completion_tokens = completion_tokens
    if card is not None:
        message.tool_call = card.as_dict()
    message.save()
    Interview.objects.filter(pk=message.interview_id).update(
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
    )
    if card is not None:
        propose_card(interview=message.interview, draft=card)
        if message.interview.status != Interview.Status.COMPLETED:
            message.interview.draft_card = card.as_dict()
            message.interview.status = Interview.Status.CARD_PROPOSED
    return message


def propose_card(*, interview: Interview, draft: CardDraft) -> None:
    Interview.objects.filter(pk=interview.pk).exclude(status=Interview.Status.COMPLETED).update(
        draft_card=draft.as_dict(), status=Interview.Status.CARD_PROPOSED
    )


def reply_due(last: Message | None) -> bool:
    """True when the last turn is the participant's, or the last reply failed: the state in
    which a retry (or a reconnect) should produce the interviewer's answer."""
    if last is None:
        return False
    return last.role == Message.Role.PARTICIPANT or last.status in {
        Message.Status.PARTIAL,
        Message.Status.FAILED,
    }


def needs_reply(interview: Interview) -> bool:
    return reply_due(interview.messages.filter(hidden_at__isnull=True).order_by("-seq").first())


def llm_messages(interview: Interview, shown: list[Message] | None = None) -> list[dict]:
    """The conversation as the model sees it: instructions in the system message, the
    participant's words fenced as data in user messages, earlier card proposals as context.
    Replies that broke off are left out (the participant never saw them complete). `shown`:
    the messages the participant sees, oldest first, when the caller has them already."""
    prompt = llm.load_prompt("interviewer")
    messages: list[dict] = [
        {"role": "system", "content": prompt.text.replace("{question}", interview.question.text)}
    ]
    if shown is None:
        shown = list(interview.messages.filter(hidden_at__isnull=True).order_by("seq"))
    for message in shown:
        if message.role == Message.Role.PARTICIPANT:
            messages.append({"role": "user", "content": llm.fence(message.content)})
        elif message.status == Message.Status.COMPLETE:
            content = message.content
            if message.tool_call:
                content = (content + "\n\n" if content else "") + (
                    f"[I proposed this values card with submit_values_card: {message.tool_call}]"
                )
            if content:
                messages.append({"role": "assistant", "content": content})
    return messages


# --- Cards --------------------------------------------------------------------------------------


@transaction.atomic
def confirm_card(*, interview: Interview, draft: CardDraft) -> ValuesCard:
    """Save the card the participant confirmed. Idempotent: confirming twice keeps one card.
    In strict moderation mode the card waits for approval before others see it."""
    interview = (
        Interview.objects.select_for_update()
        .select_related("participant__deliberation", "question")
        .get(pk=interview.pk)
    )
    existing = ValuesCard.objects.filter(interview=interview).first()
    if existing is not None:
        return existing
    validate_card(draft)
    deliberation = interview.participant.deliberation
    strict = deliberation.moderation_mode == Deliberation.ModerationMode.STRICT
    card = ValuesCard.objects.create(
        deliberation=deliberation,
        participant=interview.participant,
        question=interview.question,
        interview=interview,
        title=draft.title,
        description=draft.description,
        policies=draft.policies,
        model=interview.model,
        prompt_version=interview.prompt_version,
        approval=ValuesCard.Approval.PENDING if strict else ValuesCard.Approval.APPROVED,
    )
    proposed = CardDraft.from_dict(interview.draft_card) if interview.draft_card else None
    if proposed is not None and proposed != draft:
        # Keep the interviewer's wording as the card's first revision: the edit is auditable.
        CardRevision.objects.create(
            card=card,
            title=proposed.title,
            description=proposed.description,
            policies=proposed.policies,
            reason="proposed by the interviewer; edited by the participant before confirming",
        )
    interview.status = Interview.Status.COMPLETED
    interview.completed_at = timezone.now()
    interview.draft_card = draft.as_dict()
    interview.save(update_fields=["status", "completed_at", "draft_card"])
    transaction.on_commit(lambda: queue_moderation(card))
    transaction.on_commit(lambda: card_confirmed.send(sender=ValuesCard, card=card))
    return card


# --- Moderation flags ---------------------------------------------------------------------------


def flag(*, target, deliberation_id: int, source: str, reason: str, detail: str = "") -> None:
    """Record a flag for the moderation queue, once per target, source and reason."""
    ModerationFlag.objects.get_or_create(
        content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk,
        source=source,
        reason=reason[:64],
        defaults={"deliberation_id": deliberation_id, "detail": detail[:2000]},
    )


def queue_moderation(target) -> None:
    """Queue the moderation check of a saved message or card for the background workers. Runs
    once the participant's input is saved: with the broker unreachable, the participant goes on
    (their input is kept and the reply still comes) and the operators get a warning naming
    what went unchecked."""
    from config.celery import enqueue
    from elicit.tasks import moderate_text

    meta = target._meta
    what = f"the moderation check of {meta.model_name} {target.pk}"
    enqueue(moderate_text, what, meta.app_label, meta.model_name, target.pk)


def moderation_text(target) -> str:
    if isinstance(target, ValuesCard):
        return "\n".join([target.title, target.description, *target.policies])
    return str(getattr(target, "content", "") or getattr(target, "comment", ""))


def deliberation_id_of(target) -> int:
    if isinstance(target, Message):
        return target.interview.participant.deliberation_id
    if hasattr(target, "deliberation_id"):
        return target.deliberation_id
    return target.participant.deliberation_id


def block_interview(*, interview: Interview) -> None:
    Interview.objects.filter(pk=interview.pk).update(status=Interview.Status.BLOCKED)


def interview_for(*, participant: Participant, interview_id: int) -> Interview | None:
    """The interview, only if it belongs to this participant: one participant can never read,
    continue or change another's interview."""
    return (
        Interview.objects.select_related("question", "participant__deliberation")
        .filter(pk=interview_id, participant=participant)
        .first()
    )

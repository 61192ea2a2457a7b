"""Stored cross-site scripting: payloads, a world that holds one in every field people can write,
and the checks that say whether a page or a file shows them as inert text.

Every payload carries a marker naming its field (`xss-<code>`), followed at once by template
text (`{{7*7}}`) and then markup that breaks out of attributes, `<textarea>` and `<title>`,
opens a `<script>` and an `<img onerror>`:

    xss-ctitle{{7*7}}'"></textarea></title><script>alert("xss-ctitle")</script><img ...>

A field too short for all of it gets the shorter form (the quotes and the `<img onerror>`). Some
payloads start with a character a spreadsheet runs as a formula (`=`, `+`, `-`, `@`, tab,
carriage return), for the exports.

Shown safely, a payload reads as text: `xss-<code>{{7*7}}` is in the page's text (or in a form
field's value), and no element, attribute or link came out of it. Rendered unsafely, the page
has a `<script>` or an `on...` attribute carrying a marker: `findings()` says where.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from elicit import access
from elicit.models import (
    CardRevision,
    Interview,
    Invite,
    Message,
    ModerationFlag,
    StaffAssignment,
    SurveyResponse,
    ValuesCard,
)
from elicit.services import remember_participant
from graph import pipeline
from graph.api_tokens import create_token
from graph.models import (
    CanonicalValue,
    DedupDecision,
    JudgmentRevision,
    PilotRun,
    PipelineJob,
    UpgradeJudgment,
    VoteRevision,
    WisestVote,
)
from graph.moderation import services as moderation
from tests.factories import (
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    InterviewFactory,
    JudgmentFactory,
    ModerationFlagFactory,
    ParticipantFactory,
    QuestionFactory,
    UserFactory,
    ValuesCardFactory,
)

PREFIX = "xss-"
TEMPLATE = "{{7*7}}"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A link the browser would run: stored where a field becomes a link.
JAVASCRIPT_URL = "javascript:alert('xss-redirect')//"


def marker(code: str) -> str:
    return PREFIX + code


# Every payload made, by code: what the world stored, for the checks of the exports.
STORED: dict[str, str] = {}


def payload(code: str, *, lead: str = "", room: int = 10_000) -> str:
    """The payload of one field, within *room* characters, starting with *lead* (a formula
    character, for the exports)."""
    m = marker(code)
    text = (
        f'{lead}{m}{TEMPLATE}\'"></textarea></title><script>alert("{m}")</script>'
        f'<img src=x onerror=alert("{m}")>'
    )
    if len(text) > room:
        text = f'{lead}{m}{TEMPLATE}\'"><img src=x onerror=alert("{m}")>'
        assert len(text) <= room, f"no payload for {code} fits in {room} characters"
    STORED[code] = text
    return text


def shown(code: str) -> str:
    """What a page shows of the field when it escapes it: the marker and the template text."""
    return marker(code) + TEMPLATE


# --- Reading a page -----------------------------------------------------------------------------

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcdoc"}
MARKER = re.compile(re.escape(PREFIX) + r"[\w-]+")
# Markup of a payload, as it would appear in the source if it were written unescaped.
RAW_MARKUP = ('<script>alert("' + PREFIX, "<img src=x onerror=alert(")


@dataclass
class Page:
    """What a browser would make of an HTML document: its text (script bodies aside), the
    values of its attributes, and what ran or would run."""

    text: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def shows(self, fragment: str) -> bool:
        return any(fragment in piece for piece in (*self.text, *self.attributes))


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.script: str | None = None  # the type of the <script> being read
        self.script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = value or ""
            self.page.attributes.append(value)
            if name.startswith("on") and PREFIX in value:
                self.page.problems.append(f"<{tag} {name}={value!r}>: an event handler")
            if name in URL_ATTRIBUTES and re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith(
                ("javascript:", "vbscript:", "data:text/html")
            ):
                self.page.problems.append(f"<{tag} {name}={value!r}>: a script URL")
        if tag == "script":
            self.script = dict(attrs).get("type") or "text/javascript"
            self.script_text = []

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self.script is not None:
            body = "".join(self.script_text)
            if self.script.endswith("json"):
                try:
                    json.loads(body)
                except ValueError:
                    self.page.problems.append(f"a JSON <script> that does not parse: {body[:200]}")
                self.page.text.append(body)  # data, shown by whatever reads it
            elif PREFIX in body:
                self.page.problems.append(f"<script>{body[:200]}</script>: a script ran")
            self.script = None

    def handle_data(self, data: str) -> None:
        if self.script is not None:
            self.script_text.append(data)
        else:
            self.page.text.append(data)


def read(document: str) -> Page:
    reader = _Reader()
    reader.feed(document)
    reader.close()
    page = reader.page
    for fragment in RAW_MARKUP:
        if fragment in document:
            at = document.index(fragment)
            page.problems.append(f"raw markup in the source: {document[at - 80 : at + 80]!r}")
    return page


def markers_in(text: str) -> set[str]:
    return set(MARKER.findall(text))


# --- The world ----------------------------------------------------------------------------------


def client_of(participant) -> Client:
    """A browser that joined as *participant* (its session remembers them)."""
    client = Client()
    session = client.session
    remember_participant(session, participant)
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _card(deliberation, question, participant, code: str, *, interview=None, leads=("", "", "")):
    return ValuesCardFactory(
        deliberation=deliberation,
        question=question,
        participant=participant,
        interview=interview,
        title=payload(f"{code}-t", lead=leads[0], room=100),
        description=payload(f"{code}-d", lead=leads[1]),
        policies=[payload(f"{code}-p1", lead=leads[2]), payload(f"{code}-p2"), "MOMENTS when"],
    )


def _value(deliberation, code: str, card=None, *, lead: str = "") -> CanonicalValue:
    value = CanonicalValue.objects.create(
        deliberation=deliberation,
        title=payload(f"{code}-t", lead=lead, room=100),
        description=payload(f"{code}-d"),
        policies=[payload(f"{code}-p1"), payload(f"{code}-p2")],
        representative=card,
    )
    if card is not None:
        ValuesCard.objects.filter(pk=card.pk).update(canonical=value)
    return value


def _messages(interview, code: str, *, lead: str = "") -> None:
    Message.objects.create(
        interview=interview, seq=0, role="interviewer", content=payload(f"{code}-llm")
    )
    Message.objects.create(
        interview=interview, seq=1, role="participant", content=payload(f"{code}-msg", lead=lead)
    )


def build_world() -> SimpleNamespace:
    """One deliberation with a payload in every field people write, seen by:

    - Ada, a panel participant who finished (card, vote, stories judged and revised, survey);
    - Bo, who confirmed his card and is at the matching, voting and judging steps;
    - Cy, in the middle of an interview whose proposed card he has not confirmed yet;
    - Eve and Fay, whose values the others vote on and judge; Mal, banned by a moderator;
    - Mo, a moderator, and Rhea, a researcher, whose user names are payloads too; Root, admin.
    """
    w = SimpleNamespace()
    w.deliberation = d = DeliberationFactory(
        slug="stored-markup",
        title=payload("dtitle", lead="=", room=200),
        description=payload("ddesc"),
        consent_text=payload("consent"),
        completion_code=payload("ccode", room=64),
        completion_redirect_url=JAVASCRIPT_URL,
        judgments_per_participant=2,
        wisest_vote_size=6,
        demographic_fields=[
            {
                "key": "party",
                "label": payload("dlabel"),
                "choices": [payload("dchoice", lead="+"), "Plain"],
                "required": False,
            },
            {"key": "story", "label": payload("dlabel2"), "choices": [], "required": False},
        ],
    )
    w.hard = ContextFactory(deliberation=d, text=payload("ctx1", lead="=", room=300))
    w.urgent = ContextFactory(deliberation=d, text=payload("ctx2", room=300))
    w.question = QuestionFactory(deliberation=d, slug="q1", text=payload("qtext", lead="+"))
    w.question.contexts.set([w.hard, w.urgent])
    w.invite = Invite.objects.create(deliberation=d, note=payload("invite", room=200))

    # Staff
    access.ensure_groups()
    w.root = UserFactory(username="root", is_superuser=True, is_staff=True)
    w.mo = UserFactory(username=payload("umo", room=150), first_name=payload("ufirst", room=150))
    StaffAssignment.objects.create(user=w.mo, deliberation=d, role="moderator")
    w.rhea = UserFactory(username=payload("urhea", room=150))
    w.rhea.groups.add(Group.objects.get(name=access.RESEARCHERS_GROUP))
    StaffAssignment.objects.create(user=w.rhea, deliberation=d, role="researcher")
    w.token, _secret = create_token(user=w.rhea, name=payload("token", room=100))

    # Participants
    w.ada = ParticipantFactory(
        deliberation=d,
        panel_pid=payload("pid", room=128),
        panel_study_id=payload("study", room=128),
        panel_session_id=payload("session", room=128),
        demographics={"party": payload("dchoice", lead="+"), "story": payload("demo", lead="\r")},
        consented_at=timezone.now(),
    )
    w.bo = ParticipantFactory(deliberation=d, consented_at=timezone.now())
    w.cy = ParticipantFactory(deliberation=d, consented_at=timezone.now())
    w.eve = ParticipantFactory(deliberation=d)
    w.fay = ParticipantFactory(deliberation=d)
    w.mal = ParticipantFactory(deliberation=d)

    # Ada's interview, card and value
    w.ada_interview = InterviewFactory(
        participant=w.ada, question=w.question, status=Interview.Status.COMPLETED
    )
    _messages(w.ada_interview, "ada", lead="@")
    w.ada_card = _card(
        d, w.question, w.ada, "acard", interview=w.ada_interview, leads=("=", "+", "-")
    )
    w.va = _value(d, "va", w.ada_card, lead="-")
    # Eve's and Fay's values, which Ada and Bo vote on and judge
    for name in ("eve", "fay"):
        person = getattr(w, name)
        interview = InterviewFactory(
            participant=person, question=w.question, status=Interview.Status.COMPLETED
        )
        _messages(interview, name)
        card = _card(d, w.question, person, f"{name}card", interview=interview)
        setattr(w, f"{name}_card", card)
        setattr(w, f"v{name[0]}", _value(d, f"v{name[0]}", card))
    DedupDecision.objects.create(
        card=w.eve_card,
        canonical=w.ve,
        method=DedupDecision.Method.LLM_JUDGE,
        similarity=0.5,
        reason=payload("dedup"),
    )

    # Stories between the values, judged by enough people for edges to be kept
    w.s1 = HypothesisFactory(
        deliberation=d, context=w.hard, from_value=w.ve, to_value=w.va, story=payload("story1")
    )
    w.s2 = HypothesisFactory(
        deliberation=d, context=w.hard, from_value=w.vf, to_value=w.va, story=payload("story2")
    )
    w.s3 = HypothesisFactory(
        deliberation=d, context=w.urgent, from_value=w.ve, to_value=w.vf, story=payload("story3")
    )
    w.s4 = HypothesisFactory(
        deliberation=d, context=w.hard, from_value=w.vf, to_value=w.ve, story=payload("story4")
    )
    for story in (w.s1, w.s2, w.s3):
        for _ in range(3):
            JudgmentFactory(hypothesis=story, participant=ParticipantFactory(deliberation=d))

    # Ada voted and judged (two stories, one answer revised), and answered the survey
    vote = WisestVote.objects.create(
        participant=w.ada, question=w.question, answered_at=timezone.now()
    )
    vote.shown.set([w.ve, w.vf])
    vote.chosen.set([w.ve])
    revision = VoteRevision.objects.create(
        vote=vote, chosen_titles=[{"id": w.ve.pk, "title": payload("vrev", room=100)}]
    )
    revision.chosen.set([w.ve])
    w.ada_judgment = JudgmentFactory(
        hypothesis=w.s3, participant=w.ada, comment=payload("jcomment", lead="@")
    )
    JudgmentRevision.objects.create(
        judgment=w.ada_judgment, verdict="not_upgrade", comment=payload("jrev")
    )
    JudgmentFactory(hypothesis=w.s4, participant=w.ada, comment=payload("jcomment2"))
    SurveyResponse.objects.create(
        participant=w.ada, felt_represented=5, comment=payload("survey", lead="\t")
    )
    w.ada.completed_at = timezone.now()
    w.ada.save(update_fields=["completed_at"])

    # Bo confirmed a card (not merged yet): matching, voting and judging lie ahead
    w.bo_interview = InterviewFactory(
        participant=w.bo, question=w.question, status=Interview.Status.COMPLETED
    )
    _messages(w.bo_interview, "bo")
    w.bo_card = _card(d, w.question, w.bo, "bocard", interview=w.bo_interview)

    # Cy has a proposed card, not confirmed yet
    w.cy_interview = InterviewFactory(
        participant=w.cy,
        question=w.question,
        status=Interview.Status.CARD_PROPOSED,
        draft_card={
            "title": payload("draft-t", room=100),
            "description": payload("draft-d"),
            "policies": [payload("draft-p1"), payload("draft-p2"), payload("draft-p3")],
        },
    )
    _messages(w.cy_interview, "cy")
    w.cy_message = w.cy_interview.messages.get(seq=1)
    Message.objects.create(
        interview=w.cy_interview,
        seq=2,
        role="interviewer",
        content=payload("cy-card-msg"),
        error=payload("msgerr"),
        status=Message.Status.PARTIAL,
        tool_call={"title": payload("tool-t", room=100), "description": payload("tool-d")},
    )

    # Mal wrote a value that was hidden, and was banned
    mal_interview = InterviewFactory(
        participant=w.mal, question=w.question, status=Interview.Status.COMPLETED
    )
    _messages(mal_interview, "mal")
    w.mal_card = _card(d, w.question, w.mal, "malcard", interview=mal_interview)
    w.vm = _value(d, "vm", w.mal_card)

    # Moderation: flags with details, and actions with notes
    ModerationFlagFactory(
        target=w.ada_card, reason=payload("freason", room=64), detail=payload("fdetail")
    )
    ModerationFlagFactory(target=w.cy_message, reason="harassment", detail=payload("fmsg"))
    ModerationFlagFactory(
        target=w.ada_judgment,
        source=ModerationFlag.Source.VOTE_QUALITY,
        reason="too_fast",
        detail=payload("fjudg"),
    )
    ModerationFlagFactory(target=w.s1, reason="harassment", detail=payload("fstory"))
    moderation.report(reporter=w.bo, target=w.ve, reason="offensive")
    w.hide = moderation.hide(actor=w.mo, target=w.vm, reason=payload("hreason", lead="="))
    moderation.ban(actor=w.mo, participant=w.mal, reason=payload("ban", lead="-"))
    moderation.edit_card(
        actor=w.mo,
        card=w.fay_card,
        title="Quotes \" and ' stay text",
        description=f"A moderator's wording {shown('enew')} with quotes \" and '.",
        policies=["MOMENTS when it matters", "CHOICES she makes alone", "SIGNS of pressure"],
        reason=payload("ereason"),
    )
    CardRevision.objects.create(
        card=w.bo_card,
        title=payload("crev-t", room=100),
        description=payload("crev-d"),
        policies=[payload("crev-p")],
        reason=payload("crev-r"),
    )

    # The pipeline's own text (errors can quote what a model or a participant wrote)
    PipelineJob.objects.create(
        deliberation=d,
        kind=PipelineJob.Kind.HYPOTHESES,
        status=PipelineJob.Status.FAILED,
        error=payload("joberr"),
        finished_at=timezone.now(),
    )
    w.run = pipeline.run_scoring(deliberation_id=d.pk)
    assert w.run.status == "done", w.run.error
    w.pilot = PilotRun.objects.create(
        deliberation=d,
        status=PilotRun.Status.FAILED,
        error=payload("piloterr"),
        created_by=w.rhea,
        finished_at=timezone.now(),
    )
    w.answered_judgment = UpgradeJudgment.objects.get(pk=w.ada_judgment.pk)
    return w

"""A small deliberation with a finished scoring run, for the export tests.

Personas: Ada (panel participant, writes a formula into a demographic answer and a comment),
Bo, and Mallory (banned: kept in the exports, marked, left out of the scores). Value B wins
"When it is hard"; value C wins "When it is urgent". Some content carries an HTML payload.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.utils import timezone

from elicit.models import Message, SurveyResponse
from graph import pipeline
from graph.models import WisestVote
from tests.factories import (
    CanonicalValueFactory,
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    InterviewFactory,
    JudgmentFactory,
    ParticipantFactory,
    QuestionFactory,
    ValuesCardFactory,
)

XSS = '<img src=x onerror="alert(1)">'
FORMULA = '=HYPERLINK("http://evil.example","click")'


def judge(participant, hypothesis, verdict, comment=""):
    return JudgmentFactory(
        participant=participant,
        hypothesis=hypothesis,
        verdict=verdict,
        comment=comment,
        answered_at=timezone.now() if verdict else None,
    )


def build_world(*, score: bool = True) -> SimpleNamespace:
    w = SimpleNamespace()
    w.deliberation = DeliberationFactory(
        demographic_fields=[{"key": "party", "label": "Party", "choices": [], "required": False}]
    )
    w.hard = ContextFactory(deliberation=w.deliberation, text="When it is hard")
    w.urgent = ContextFactory(deliberation=w.deliberation, text="When it is urgent")
    w.question = QuestionFactory(deliberation=w.deliberation, slug="homework")
    w.question.contexts.add(w.hard, w.urgent)
    w.ada = ParticipantFactory(
        deliberation=w.deliberation, panel_pid="PROLIFIC-ADA", demographics={"party": FORMULA}
    )
    w.bo = ParticipantFactory(deliberation=w.deliberation, demographics={"party": "green"})
    w.mallory = ParticipantFactory(deliberation=w.deliberation, banned_at=timezone.now())

    w.a = CanonicalValueFactory(deliberation=w.deliberation, title="Value A")
    w.b = CanonicalValueFactory(
        deliberation=w.deliberation, title="Value B", description=f"Listening first. {XSS}"
    )
    w.c = CanonicalValueFactory(deliberation=w.deliberation, title="Value C")
    w.interviews = {}
    for person, value in ((w.ada, w.b), (w.bo, w.b), (w.mallory, w.c)):
        interview = InterviewFactory(participant=person, question=w.question)
        Message.objects.create(interview=interview, seq=0, role="interviewer", content="Hello?")
        Message.objects.create(
            interview=interview, seq=1, role="participant", content=f"I care. {XSS}"
        )
        ValuesCardFactory(
            deliberation=w.deliberation,
            question=w.question,
            participant=person,
            interview=interview,
            title=FORMULA if person is w.bo else "Listening first",
            canonical=value,
        )
        w.interviews[person.pk] = interview
    w.hidden_message = Message.objects.create(
        interview=w.interviews[w.ada.pk],
        seq=2,
        role="participant",
        content="something a moderator hid",
        hidden_at=timezone.now(),
    )

    w.ab = HypothesisFactory(
        deliberation=w.deliberation, context=w.hard, from_value=w.a, to_value=w.b
    )
    w.bc = HypothesisFactory(
        deliberation=w.deliberation, context=w.hard, from_value=w.b, to_value=w.c
    )
    w.ac = HypothesisFactory(
        deliberation=w.deliberation, context=w.urgent, from_value=w.a, to_value=w.c
    )
    for person in (w.ada, w.bo):
        judge(person, w.ab, "upgrade")
        judge(person, w.bc, "not_upgrade")
    w.formula_comment = judge(w.ada, w.ac, "upgrade", comment="-2+3 is what I think")
    w.hidden_comment = judge(w.bo, w.ac, "upgrade", comment="a hidden insult")
    w.hidden_comment.hidden_at = timezone.now()
    w.hidden_comment.save()
    judge(w.mallory, w.ab, "not_upgrade")
    judge(w.mallory, w.ac, "")  # shown, never answered

    vote = WisestVote.objects.create(
        participant=w.ada, question=w.question, answered_at=timezone.now()
    )
    vote.shown.set([w.a, w.b, w.c])
    vote.chosen.set([w.b])
    SurveyResponse.objects.create(
        participant=w.ada, felt_represented=5, graph_fair=4, comment="@SUM(1,2) fair"
    )
    w.run = pipeline.run_scoring(deliberation_id=w.deliberation.pk) if score else None
    return w

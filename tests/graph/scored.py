"""A small scored deliberation for the explorer and result tests: one question with two
contexts, a second question sharing one of them, values with cards, upgrade judgments, and a
scoring run made by the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from elicit.models import Context, Deliberation, Participant, Question, ValuesCard
from graph import pipeline
from graph.models import CanonicalValue, ScoringRun, UpgradeHypothesis
from tests.factories import (
    CanonicalValueFactory,
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    JudgmentFactory,
    ParticipantFactory,
    QuestionFactory,
    ValuesCardFactory,
)


@dataclass
class Scored:
    deliberation: Deliberation
    question: Question
    other_question: Question
    distress: Context  # of the first question only
    shared: Context  # of both questions
    elsewhere: Context  # of the second question only
    values: dict[str, CanonicalValue]
    authors: dict[str, Participant]
    stories: dict[str, UpgradeHypothesis]
    run: ScoringRun | None


def value(deliberation, question, title: str, **card) -> tuple[CanonicalValue, Participant]:
    author = ParticipantFactory(deliberation=deliberation, panel_pid=f"PANEL-{title[:8]}")
    card = ValuesCardFactory(
        deliberation=deliberation, participant=author, question=question, title=title, **card
    )
    canonical = CanonicalValueFactory(deliberation=deliberation, title=title, representative=card)
    ValuesCard.objects.filter(pk=card.pk).update(canonical=canonical)
    return canonical, author


def judged(hypothesis: UpgradeHypothesis, *verdicts: str) -> None:
    for verdict in verdicts:
        JudgmentFactory(hypothesis=hypothesis, verdict=verdict)


def scored_deliberation(*, run: bool = True, **fields) -> Scored:
    deliberation = DeliberationFactory(**fields)
    distress = ContextFactory(deliberation=deliberation, text="When the person is in distress")
    shared = ContextFactory(deliberation=deliberation, text="When a decision lasts")
    elsewhere = ContextFactory(deliberation=deliberation, text="When facts about violence matter")
    question = QuestionFactory(deliberation=deliberation, slug="abortion", text="Abortion advice?")
    question.contexts.set([distress, shared])
    other = QuestionFactory(deliberation=deliberation, slug="weapons", text="Weapons used?")
    other.contexts.set([shared, elsewhere])
    values, authors = {}, {}
    for key, q, title in [
        ("care", question, "Care without judgment"),
        ("autonomy", question, "Trusting her to decide"),
        ("facts", question, "Plain facts first"),
        ("history", other, "Honest history"),
    ]:
        values[key], authors[key] = value(deliberation, q, title)
    stories = {
        f"{a}>{b}": HypothesisFactory(
            deliberation=deliberation,
            context=context,
            from_value=values[a],
            to_value=values[b],
            story=story,
        )
        for a, b, context, story in [
            (
                "facts",
                "care",
                distress,
                "She once cared about plain facts, then saw the person behind the question.",
            ),
            ("care", "autonomy", distress, "Caring, she came to trust the person to decide."),
            ("history", "facts", elsewhere, "A story about violence facts."),
        ]
    }
    judged(stories["facts>care"], "upgrade", "upgrade", "upgrade", "not_upgrade")
    judged(stories["care>autonomy"], "upgrade", "upgrade", "upgrade")
    judged(stories["history>facts"], "upgrade", "upgrade")
    scoring = pipeline.run_scoring(deliberation_id=deliberation.pk) if run else None
    if scoring is not None:
        assert scoring.status == ScoringRun.Status.DONE, scoring.error
    return Scored(
        deliberation,
        question,
        other,
        distress,
        shared,
        elsewhere,
        values,
        authors,
        stories,
        scoring,
    )

"""Pilots: run a deliberation's pipeline on simulated participants before going live.

A pilot is a separate `Deliberation` (``pilot_of`` the real one, status draft, never open)
holding simulated participants only (``Participant.is_simulated``), so simulated data never
mixes with real data: it lives under another deliberation id, and every real result is read
per deliberation. The public list of deliberations and the schedule skip it.

`run_pilot` does two things with one set of settings (graph/simulation.py describes the
simulated participants):

1. **The pilot deliberation.** It copies the real deliberation's questions and contexts,
   creates simulated values, participants with a card for their own value, one hypothesis
   per story shown, and the judgments with their timing, then runs the real vote-quality
   check and the real scoring on it, with flagged data excluded and included. Researchers
   can open its results like any run.
2. **The power analysis.** For each participant count, ``repeats`` simulations scored by the
   same pure functions (graph/algorithms.py) in memory: per estimator, Kendall tau and how
   often the planted winner is found; with a faction, whether it was flagged and whether its
   value won with and without the flagged data.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from elicit.models import Context, Deliberation, Participant, Question, ValuesCard
from graph import algorithms, pipeline, simulation
from graph.models import CanonicalValue, PilotRun, ScoringRun, UpgradeHypothesis, UpgradeJudgment

logger = logging.getLogger(__name__)

#: The pilot deliberation holds at most this many simulated participants (the largest count
#: asked for, capped); the power analysis itself runs in memory at every count.
MAX_MATERIALISED = 2000
VERDICTS = {0: "upgrade", 1: "not_upgrade", 2: "unsure"}


@dataclasses.dataclass(frozen=True)
class PilotRequest:
    """What a researcher asks for (validated by the form; see graph/research/pilot.py)."""

    settings: simulation.SimulationSettings
    participants: tuple[int, ...]
    repeats: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "participants": list(self.participants),
            "repeats": self.repeats,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PilotRequest:
        settings = dict(data["settings"])
        if settings.get("planted"):
            settings["planted"] = tuple(tuple(order) for order in settings["planted"])
        return cls(
            settings=simulation.SimulationSettings(**settings),
            participants=tuple(data["participants"]),
            repeats=int(data["repeats"]),
            seed=int(data["seed"]),
        )


class PilotInputError(ValueError):
    """A researcher's input that cannot make a pilot: ``errors`` maps each culprit field
    ("" when no single field is to blame) to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def build_request(
    *,
    participants: str,
    planted: str,
    repeats: int,
    seed: int,
    n_values: int,
    n_contexts: int,
    judgments_per_participant: int,
    noise: float,
    unsure_share: float,
    faction_share: float,
) -> PilotRequest:
    """A `PilotRequest` from what a researcher typed (the page's form and the command)."""
    errors = {}
    try:
        counts = parse_participants(participants)
    except ValueError as error:
        errors["participants"] = str(error)
    try:
        order = parse_planted(planted, n_values=n_values)
    except ValueError as error:
        errors["planted"] = str(error)
    if errors:
        raise PilotInputError(errors)
    try:
        settings = simulation.SimulationSettings(
            n_values=n_values,
            n_contexts=n_contexts,
            judgments_per_participant=judgments_per_participant,
            noise=noise,
            unsure_share=unsure_share,
            faction_share=faction_share,
            planted=order,
        )
    except ValueError as error:
        raise PilotInputError({"": str(error)}) from None
    return PilotRequest(settings=settings, participants=counts, repeats=repeats, seed=seed)


def queue_pilot(*, deliberation: Deliberation, request: PilotRequest, user=None) -> PilotRun:
    """Record the pilot run (queued, visible at once) and send its task on commit."""
    if deliberation.is_pilot:
        raise ValueError("a pilot cannot have pilots of its own")
    run = PilotRun.objects.create(
        deliberation=deliberation, simulation=request.to_dict(), created_by=user
    )

    def send() -> None:
        from graph import tasks

        tasks.run_pilot_task.delay(run.pk)

    transaction.on_commit(send)
    return run


def _pilot_deliberation(deliberation: Deliberation) -> Deliberation:
    """A fresh pilot deliberation of *deliberation* (an older pilot is replaced, with all
    its simulated data)."""
    # Cards protect their question from deletion; in a pilot everything is simulated.
    ValuesCard.objects.filter(deliberation__pilot_of=deliberation).delete()
    Deliberation.objects.filter(pilot_of=deliberation).delete()
    slug = slugify(f"{deliberation.slug[:50]}-pilot")
    if Deliberation.objects.filter(slug=slug).exists():  # a real deliberation took the name
        slug = f"{slug}-{deliberation.pk}"
    return Deliberation.objects.create(
        slug=slug,
        title=f"Pilot of {deliberation.title}"[:200],
        description=deliberation.description,
        status=Deliberation.Status.DRAFT,
        pilot_of=deliberation,
        moderation_mode=deliberation.moderation_mode,
        judgments_per_participant=deliberation.judgments_per_participant,
    )


def _copy_structure(
    source: Deliberation, pilot: Deliberation, n_contexts: int
) -> tuple[list[Context], list[Question]]:
    """The first *n_contexts* contexts (simulated ones beyond those the deliberation has)
    and every question, linked as in the deliberation; every context gets a question."""
    texts = list(source.contexts.order_by("pk").values_list("text", flat=True)[:n_contexts])
    texts += [f"When simulated situation {k + 1} arises" for k in range(len(texts), n_contexts)]
    contexts = [Context.objects.create(deliberation=pilot, text=text) for text in texts]
    by_text = {c.text: c for c in contexts}
    questions = []
    for question in source.questions.prefetch_related("contexts"):
        copy = Question.objects.create(
            deliberation=pilot,
            slug=question.slug,
            text=question.text,
            position=question.position,
            is_active=question.is_active,
        )
        copy.contexts.set([by_text[c.text] for c in question.contexts.all() if c.text in by_text])
        questions.append(copy)
    if not questions:
        questions.append(
            Question.objects.create(
                deliberation=pilot, slug="simulated", text="A simulated question"
            )
        )
    for context in contexts:
        if not context.questions.exists():
            questions[0].contexts.add(context)
    return contexts, questions


@transaction.atomic
def materialise(
    *, deliberation: Deliberation, sim: simulation.Simulation, now=None
) -> Deliberation:
    """Write one simulation into a fresh pilot deliberation of *deliberation*."""
    now = now or timezone.now()
    settings = sim.settings
    pilot = _pilot_deliberation(deliberation)
    contexts, questions = _copy_structure(deliberation, pilot, settings.n_contexts)
    values = CanonicalValue.objects.bulk_create(
        CanonicalValue(
            deliberation=pilot,
            title=f"Simulated value {i + 1}",
            description="A simulated value with a planted wisdom per context.",
            policies=[f"MOMENTS when simulated value {i + 1} matters"],
        )
        for i in range(settings.n_values)
    )
    value_pk = np.array([v.pk for v in values], dtype=np.int64)
    # Every value is relevant to every context: one card per value and question (no author).
    ValuesCard.objects.bulk_create(
        ValuesCard(
            deliberation=pilot,
            question=question,
            title=value.title,
            description=value.description,
            policies=value.policies,
            canonical=value,
        )
        for value in values
        for question in questions
    )
    start = now - timedelta(hours=settings.duration_hours)
    people = Participant.objects.bulk_create(
        Participant(
            deliberation=pilot,
            is_simulated=True,
            consented_at=start,
            completed_at=now,
            demographics={"faction": bool(i in set(sim.faction.tolist()))},
        )
        for i in range(settings.n_participants)
    )
    person_pk = np.array([p.pk for p in people], dtype=np.int64)
    ValuesCard.objects.bulk_create(
        ValuesCard(
            deliberation=pilot,
            participant=people[i],
            question=questions[0],
            title=values[int(v)].title,
            description=values[int(v)].description,
            policies=values[int(v)].policies,
            canonical=values[int(v)],
        )
        for i, v in enumerate(sim.own_value.tolist())
    )
    rows = sim.rows
    stories = sorted(
        set(
            zip(
                rows.context.tolist(), rows.from_value.tolist(), rows.to_value.tolist(), strict=True
            )
        )
    )
    hypotheses = UpgradeHypothesis.objects.bulk_create(
        UpgradeHypothesis(
            deliberation=pilot,
            context=contexts[c],
            from_value=values[a],
            to_value=values[b],
            pair_key="-".join(map(str, sorted((int(value_pk[a]), int(value_pk[b]))))),
        )
        for c, a, b in stories
    )
    hypothesis_of = {story: h for story, h in zip(stories, hypotheses, strict=True)}
    judgments = []
    for i in range(len(rows)):
        hypothesis = hypothesis_of[
            (int(rows.context[i]), int(rows.from_value[i]), int(rows.to_value[i]))
        ]
        judgments.append(
            UpgradeJudgment(
                participant_id=int(person_pk[rows.participant[i]]),
                hypothesis=hypothesis,
                context_id=hypothesis.context_id,
                pair_key=hypothesis.pair_key,
                verdict=VERDICTS[int(rows.verdict[i])],
                answered_at=start + timedelta(seconds=float(rows.answered_at[i])),
            )
        )
    created = UpgradeJudgment.objects.bulk_create(judgments, batch_size=2000)
    # shown_at is set on insert (auto_now_add); put the simulated reading times back.
    for judgment, shown in zip(created, rows.shown_at.tolist(), strict=True):
        judgment.shown_at = start + timedelta(seconds=shown)
    UpgradeJudgment.objects.bulk_update(created, ["shown_at"], batch_size=2000)
    return pilot


def planted_report(sim: simulation.Simulation, pilot: Deliberation) -> list[dict[str, Any]]:
    """Per context of the pilot: the simulated values from wisest to least wise (titles)."""
    values = list(CanonicalValue.objects.filter(deliberation=pilot).order_by("pk"))
    contexts = list(Context.objects.filter(deliberation=pilot).order_by("pk"))
    return [
        {
            "context_id": context.pk,
            "context": context.text,
            "wisest_first": [values[int(i)].pk for i in np.argsort(-sim.wisdom[c], kind="stable")],
        }
        for c, context in enumerate(contexts)
    ]


def run_pilot(*, pilot_run_id: int) -> PilotRun:
    """Materialise the pilot, run vote quality and scoring on it, and compute the power
    analysis. Safe to run twice: a finished pilot run is returned as it is."""
    run = PilotRun.objects.select_related("deliberation").get(pk=pilot_run_id)
    if run.status == PilotRun.Status.DONE:
        return run
    PilotRun.objects.filter(pk=run.pk).update(status=PilotRun.Status.RUNNING, error="")
    try:
        request = PilotRequest.from_dict(run.simulation)
        largest = min(max(request.participants), MAX_MATERIALISED)
        settings = dataclasses.replace(request.settings, n_participants=largest)
        sim = simulation.simulate(settings, seed=request.seed)
        pilot = materialise(deliberation=run.deliberation, sim=sim)
        quality_job = pipeline.check_vote_quality(deliberation_id=pilot.pk)
        runs = {
            label: pipeline.run_scoring(
                deliberation_id=pilot.pk,
                estimator=ScoringRun.Estimator.BRADLEY_TERRY,
                include_flagged=include,
            )
            for label, include in (("excluded", False), ("included", True))
        }
        power = simulation.power_analysis(
            request.settings,
            participants=request.participants,
            repeats=request.repeats,
            seed=request.seed,
            params=pipeline.scoring_params(),
            quality_settings=pipeline.quality_settings(),
        )
        report = {
            "power": power,
            "pilot": {
                "deliberation": pilot.pk,
                "slug": pilot.slug,
                "participants": largest,
                "planted": planted_report(sim, pilot),
                "faction_value": (
                    None if sim.faction_value is None else int(_value_pks(pilot)[sim.faction_value])
                ),
                "vote_quality": quality_job.params.get("found", {}),
                "runs": {
                    label: {"id": r.pk, "status": r.status, "error": r.error}
                    for label, r in runs.items()
                },
            },
        }
    except Exception as error:
        logger.warning("pilot run %s failed: %s", run.pk, str(error)[:500])
        PilotRun.objects.filter(pk=run.pk).update(
            status=PilotRun.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    PilotRun.objects.filter(pk=run.pk).update(
        status=PilotRun.Status.DONE,
        pilot=pilot,
        report=pipeline._json_ready(report),
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


def _value_pks(pilot: Deliberation) -> list[int]:
    return list(
        CanonicalValue.objects.filter(deliberation=pilot)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def recovery_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The power analysis as table rows for the page: one per participant count."""
    rows = []
    for size in report.get("power", {}).get("sizes", []):
        rows.append(
            {
                "participants": size["participants"],
                "repeats": size["repeats"],
                "estimators": [
                    {"name": name, **size[name]}
                    for name in (algorithms.Estimator.PAGERANK, algorithms.Estimator.BRADLEY_TERRY)
                    if name in size
                ],
                "faction": size.get("faction"),
            }
        )
    return rows


def parse_participants(text: str, *, minimum: int = 10, maximum: int = 5000) -> tuple[int, ...]:
    """ "50, 200, 1000" -> (50, 200, 1000); ValueError naming the problem otherwise."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts or len(parts) > 6:
        raise ValueError("between one and six participant counts")
    counts = []
    for part in parts:
        if not part.isdigit() or not minimum <= int(part) <= maximum:
            raise ValueError(f"each count must be a whole number from {minimum} to {maximum}")
        counts.append(int(part))
    return tuple(sorted(set(counts)))


def parse_planted(text: str, *, n_values: int) -> tuple[tuple[int, ...], ...] | None:
    """ "3, 1, 2" (value numbers from 1, wisest first) -> ((2, 0, 1),); "" -> None. Several
    orders, one per context, are separated by ";"."""
    if not text.strip():
        return None
    orders = []
    for chunk in text.split(";"):
        parts = [p.strip() for p in chunk.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts) or sorted(int(p) for p in parts) != list(
            range(1, n_values + 1)
        ):
            raise ValueError(f"an order must list each value 1 to {n_values} once")
        orders.append(tuple(int(p) - 1 for p in parts))
    return tuple(orders)

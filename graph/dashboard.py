"""What the research dashboard shows about a deliberation: the participant funnel with the
median time per step, language-model tokens and their estimated cost, the legitimacy survey,
and the state of the background pipeline. Read-only; a few aggregate queries each."""

from __future__ import annotations

import dataclasses
import statistics
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from elicit.models import Deliberation, Interview, Participant, SurveyResponse, ValuesCard
from graph.models import PipelineJob, ScoringRun, UpgradeJudgment, WisestVote

# The steps of the participant flow, in order: (key, label). Each participant's time at a step
# is when they first reached it (for "judged", when they answered their last judgment).
STEPS = (
    ("arrived", _("Arrived")),
    ("consented", _("Consented")),
    ("interview_started", _("Interview started")),
    ("card_confirmed", _("Card confirmed")),
    ("voted", _("Voted")),
    ("judged", _("Judged")),
    ("surveyed", _("Surveyed")),
)

SURVEY_QUESTIONS = (
    ("felt_represented", _("I feel my values were represented")),
    ("graph_fair", _("The result is fair, even if my value did not win")),
    ("clarified_thinking", _("Taking part clarified my thinking")),
    ("trust_process", _("I trust the process")),
)


@dataclasses.dataclass
class FunnelStep:
    key: str
    label: str
    count: int
    share: float | None  # of those who arrived
    median_from_previous: timedelta | None

    @property
    def percent(self) -> int | None:
        return None if self.share is None else round(100 * self.share)

    @property
    def median_text(self) -> str:
        return duration_text(self.median_from_previous)


def duration_text(duration: timedelta | None) -> str:
    """ "2 h 05 min", "3 min 20 s", "45 s"; "" for None."""
    if duration is None:
        return ""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return gettext("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    if minutes:
        return gettext("%(m)d min %(s)02d s") % {"m": minutes, "s": seconds}
    return gettext("%(s)d s") % {"s": seconds}


def _step_times(deliberation: Deliberation):
    """One row per participant with the time they reached each step (None if not)."""
    first = {
        "interview_started": Interview.objects.filter(participant=OuterRef("pk"))
        .order_by("started_at")
        .values("started_at")[:1],
        "card_confirmed": ValuesCard.objects.filter(participant=OuterRef("pk"))
        .order_by("created_at")
        .values("created_at")[:1],
        "voted": WisestVote.objects.filter(participant=OuterRef("pk"), answered_at__isnull=False)
        .order_by("answered_at")
        .values("answered_at")[:1],
        "judged": UpgradeJudgment.objects.filter(
            participant=OuterRef("pk"), answered_at__isnull=False
        )
        .order_by("-answered_at")
        .values("answered_at")[:1],
        "surveyed": SurveyResponse.objects.filter(participant=OuterRef("pk")).values("created_at")[
            :1
        ],
    }
    return (
        Participant.objects.filter(deliberation=deliberation)
        .annotate(**{key: Subquery(query) for key, query in first.items()})
        .values_list("created_at", "consented_at", *first.keys())
    )


def funnel(deliberation: Deliberation) -> list[FunnelStep]:
    """How many participants reached each step, and the median time from the step before
    (over the participants who reached both)."""
    rows: list[tuple[datetime | None, ...]] = list(_step_times(deliberation))
    arrived = len(rows)
    steps = []
    for index, (key, label) in enumerate(STEPS):
        reached = [row for row in rows if row[index] is not None]
        median = None
        if index:
            gaps = [
                (row[index] - row[index - 1]).total_seconds()
                for row in reached
                if row[index - 1] is not None
            ]
            if gaps:
                median = timedelta(seconds=round(statistics.median(gaps)))
        steps.append(
            FunnelStep(
                key=key,
                label=str(label),
                count=len(reached),
                share=len(reached) / arrived if arrived else None,
                median_from_previous=median,
            )
        )
    return steps


@dataclasses.dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # None: prices not configured

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def estimated_cost(prompt_tokens: int, completion_tokens: int) -> float | None:
    """Cost at the configured prices per million tokens; None when no price is set (unknown,
    not free)."""
    prompt_price = settings.LLM_PRICE_PROMPT_PER_MTOK
    completion_price = settings.LLM_PRICE_COMPLETION_PER_MTOK
    if not prompt_price and not completion_price:
        return None
    return (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000


def usage(deliberation: Deliberation) -> Usage:
    """Tokens of the interviews (each interview holds the sum of its messages) plus those the
    pipeline's jobs recorded in their params, if they did."""
    totals = Interview.objects.filter(participant__deliberation=deliberation).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )
    prompt, completion = totals["prompt"] or 0, totals["completion"] or 0
    for params in PipelineJob.objects.filter(
        Q(params__has_key="prompt_tokens") | Q(params__has_key="completion_tokens"),
        deliberation=deliberation,
    ).values_list("params", flat=True):
        prompt += int(params.get("prompt_tokens") or 0)
        completion += int(params.get("completion_tokens") or 0)
    return Usage(prompt, completion, estimated_cost(prompt, completion))


@dataclasses.dataclass
class SurveyFigure:
    key: str
    label: str
    answered: int
    mean: float | None
    agree_share: float | None  # 4 or 5 on the 5-point scale
    distribution: list[int]  # counts of 1..5

    @property
    def agree_percent(self) -> int | None:
        return None if self.agree_share is None else round(100 * self.agree_share)


def survey(deliberation: Deliberation) -> tuple[int, list[SurveyFigure]]:
    """The number of responses, and per question: answers, mean, share agreeing (4-5) and the
    counts of each point of the scale."""
    responses = SurveyResponse.objects.filter(participant__deliberation=deliberation)
    aggregates: dict[str, Any] = {"n": Count("pk")}
    for key, _label in SURVEY_QUESTIONS:
        for point in range(1, 6):
            aggregates[f"{key}_{point}"] = Count("pk", filter=Q(**{key: point}))
    counts = responses.aggregate(**aggregates)
    figures = []
    for key, label in SURVEY_QUESTIONS:
        distribution = [counts[f"{key}_{point}"] for point in range(1, 6)]
        answered = sum(distribution)
        figures.append(
            SurveyFigure(
                key=key,
                label=str(label),
                answered=answered,
                mean=(
                    sum(p * n for p, n in zip(range(1, 6), distribution, strict=True)) / answered
                    if answered
                    else None
                ),
                agree_share=(distribution[3] + distribution[4]) / answered if answered else None,
                distribution=distribution,
            )
        )
    return counts["n"], figures


@dataclasses.dataclass
class PipelineState:
    current: PipelineJob | None  # the latest whole-pipeline job
    steps: list[PipelineJob]  # its step jobs, in order
    recent: list[PipelineJob]  # the latest jobs of any kind
    in_flight: bool
    last_run: ScoringRun | None

    @property
    def percent(self) -> int | None:
        job = self.current
        if job is None or not job.progress_total:
            return None
        return round(100 * job.progress_done / job.progress_total)


ACTIVE = (PipelineJob.Status.QUEUED, PipelineJob.Status.RUNNING)


def pipeline_state(deliberation: Deliberation) -> PipelineState:
    jobs = PipelineJob.objects.filter(deliberation=deliberation)
    current = jobs.filter(kind=PipelineJob.Kind.PIPELINE).first()
    steps: list[PipelineJob] = []
    if current is not None:
        ids = [pk for pk in (current.params.get("jobs") or {}).values() if isinstance(pk, int)]
        by_id = jobs.in_bulk(ids)
        steps = [by_id[pk] for pk in ids if pk in by_id]
    return PipelineState(
        current=current,
        steps=steps,
        recent=list(jobs[:8]),
        in_flight=jobs.filter(status__in=ACTIVE).exists(),
        last_run=ScoringRun.objects.filter(
            deliberation=deliberation, status=ScoringRun.Status.DONE
        ).first(),
    )


@dataclasses.dataclass
class Overview:
    """Counts of what the deliberation holds, for the dashboard's header."""

    participants: int
    cards: int
    judgments: int
    flagged_open: int


def overview(deliberation: Deliberation) -> Overview:
    participants = Participant.objects.filter(deliberation=deliberation)
    return Overview(
        participants=participants.count(),
        cards=ValuesCard.objects.filter(deliberation=deliberation).count(),
        judgments=UpgradeJudgment.objects.filter(
            hypothesis__deliberation=deliberation, answered_at__isnull=False
        ).count(),
        flagged_open=deliberation.flags.filter(state__in=["open", "claimed"]).count(),
    )


__all__ = [
    "STEPS",
    "FunnelStep",
    "PipelineState",
    "estimated_cost",
    "funnel",
    "overview",
    "pipeline_state",
    "survey",
    "usage",
]

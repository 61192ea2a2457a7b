"""Reading scoring results, for the explorer and for participants at the end of their journey.

A scoring run stores its results as JSON (see `algorithms.ScoringResult.to_dict` and the
helpers' contract): per context the values with their scores, the winners and a support label;
the edges as columns. Readers here tolerate keys that older runs lack, and add nothing.

The participant's end: where their value sits in the graph of their question (its rank per
context, the upgrades it gained and lost), the legitimacy survey of the 2024 trial, and the
completion hand-back. Their personal link (`Participant.receipt_token`) shows the same result
later, without the session; it shows nothing that identifies them (see `receipt_participant`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from elicit.models import Context, Deliberation, Participant, Question, SurveyResponse
from graph import participation
from graph.algorithms import EdgeRow
from graph.models import CanonicalValue, ScoringRun
from graph.services import shown_values

SURVEY_FIELDS = ("felt_represented", "graph_fair", "clarified_thinking", "trust_process")


def latest_run(deliberation: Deliberation) -> ScoringRun | None:
    """The deliberation's latest finished run, without flagged votes (the contract's rule)."""
    return ScoringRun.objects.filter(
        deliberation=deliberation, status=ScoringRun.Status.DONE, include_flagged=False
    ).first()


# --- The results JSON, read tolerantly ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContextScores:
    """One context of a run: its values best first, with their scores."""

    context_id: int
    scores: dict[int, float]
    winners: frozenset[int]
    support: str
    n_edges: int | None = None  # upgrades kept in the context (None: the run does not say)
    # Bradley-Terry log-strength and its standard error per value, when the run has them.
    strength: dict[int, tuple[float, float]] = dataclasses.field(default_factory=dict)

    @property
    def compared(self) -> bool:
        """False when no upgrade was kept in the context: every value then ties, and calling
        them all "winners" would tell a participant nothing true."""
        return self.n_edges != 0

    def ranked(self) -> list[int]:
        return sorted(self.scores, key=lambda v: (-self.scores[v], v))

    def rank(self, value_id: int) -> int | None:
        """1 for the best scored value; None when the value is not in the context."""
        if value_id not in self.scores:
            return None
        return self.ranked().index(value_id) + 1


def context_scores(results: Mapping[str, Any]) -> dict[int, ContextScores]:
    """Per context: PageRank scores, the winners of the run's primary estimator, the support
    label, and the Bradley-Terry strengths when the run computed them."""
    primary = results.get("primary") or "pagerank"
    out: dict[int, ContextScores] = {}
    for entry in results.get("contexts") or []:
        try:
            context_id = int(entry["context_id"])
        except (KeyError, TypeError, ValueError):
            continue
        values = entry.get("values") or []
        scores = entry.get("scores") or [0.0] * len(values)
        bt = entry.get("bradley_terry") or {}
        strength = bt.get("strength") or []
        se = bt.get("se") or [float("nan")] * len(strength)
        # The run's primary estimator names the winners; "scores" always mean PageRank.
        winners = entry.get("winners") or []
        if primary == "bradley_terry" and "winners" in bt:
            winners = bt["winners"]
        out[context_id] = ContextScores(
            context_id=context_id,
            scores={int(v): float(s) for v, s in zip(values, scores, strict=False)},
            winners=frozenset(int(w) for w in winners),
            support=str(entry.get("support") or ""),
            n_edges=entry.get("n_edges"),
            strength={
                int(v): (float(x), float(e)) for v, x, e in zip(values, strength, se, strict=False)
            },
        )
    return out


def edge_stats(
    results: Mapping[str, Any], context_ids: Iterable[int] | None = None
) -> list[EdgeRow]:
    """The run's edges (of the given contexts, or all) as `algorithms.EdgeRow`s. A column an
    older run lacks reads as zeros (kept: true); without the ids there are no edges."""
    columns = dict(results.get("edges") or {})
    columns.setdefault("from_value", columns.get("from"))  # the contract's short names
    columns.setdefault("to_value", columns.get("to"))
    n = len(columns.get("context") or [])
    defaults = {"likelihood": 0.0, "entropy": 0.0, "kept": True}

    def column(name: str) -> list | None:
        values = columns.get(name)
        if isinstance(values, list) and len(values) == n:
            return values
        return (
            None if name in ("context", "from_value", "to_value") else [defaults.get(name, 0)] * n
        )

    table = [column(name) for name in EdgeRow._fields]
    if any(c is None for c in table):
        return []
    wanted = None if context_ids is None else set(context_ids)
    return [EdgeRow(*row) for row in zip(*table, strict=True) if wanted is None or row[0] in wanted]


# --- Where a participant's value sits -----------------------------------------------------------


def current_value(value: CanonicalValue | None) -> CanonicalValue | None:
    """Follow moderator merges to the value that now carries this one (cycles cannot occur in
    practice, but a bound keeps a bad row from looping)."""
    for _ in range(20):
        if value is None or value.merged_into_id is None:
            return value
        value = value.merged_into
    return value


def participant_value(participant: Participant) -> CanonicalValue | None:
    """The value of the participant's latest card: the one it joined, or the one they said was
    theirs; None before deduplication has placed it."""
    card = participation.latest_card(participant)
    if card is None:
        return None
    value = card.canonical if card.canonical_id else card.chosen_canonical
    return current_value(value)


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """An upgrade into or out of the participant's value, as the run counted it."""

    other: CanonicalValue
    upgrade: int
    total: int


@dataclasses.dataclass(frozen=True)
class Standing:
    """The participant's value in one context of their question."""

    context: Context
    rank: int | None
    size: int
    winner: bool
    support: str
    winners: list[CanonicalValue]
    gained: list[Upgrade]  # others judged wiser by moving to this value
    lost: list[Upgrade]  # ... by moving from this value to another


@dataclasses.dataclass(frozen=True)
class ParticipantResult:
    question: Question | None
    value: CanonicalValue | None
    run: ScoringRun | None
    standings: list[Standing]


def participant_result(participant: Participant) -> ParticipantResult:
    """Where the participant's value sits in the latest run, per context of their question.
    Only values others may see are named (a hidden value is never shown to a participant)."""
    card = participation.latest_card(participant)
    question = card.question if card is not None else None
    value = participant_value(participant)
    run = latest_run(participant.deliberation)
    if question is None or value is None or run is None:
        return ParticipantResult(question, value, run, [])
    contexts = list(question.contexts.order_by("id"))
    scores = context_scores(run.results)
    visible = {v.pk: v for v in shown_values(participant.deliberation)}
    edges = [
        e
        for e in edge_stats(run.results, [c.pk for c in contexts])
        if e.kept and value.pk in (e.from_value, e.to_value)
    ]
    standings = []
    for context in contexts:
        entry = scores.get(context.pk)
        if entry is None:
            continue
        mine = [e for e in edges if e.context == context.pk]
        winners = entry.winners if entry.compared else frozenset()
        standings.append(
            Standing(
                context=context,
                rank=entry.rank(value.pk) if entry.compared else None,
                size=len(entry.scores),
                winner=value.pk in winners,
                support=entry.support,
                winners=[visible[w] for w in sorted(winners) if w in visible],
                gained=[
                    Upgrade(visible[e.from_value], e.upgrade, e.total)
                    for e in mine
                    if e.to_value == value.pk and e.from_value in visible
                ],
                lost=[
                    Upgrade(visible[e.to_value], e.upgrade, e.total)
                    for e in mine
                    if e.from_value == value.pk and e.to_value in visible
                ],
            )
        )
    return ParticipantResult(question, value, run, standings)


# --- The end of the journey ---------------------------------------------------------------------


def journey_finished(participant: Participant) -> bool:
    """The participant has a card and nothing left to do: enough stories judged, or none left
    to show them (an unanswered story shown to them counts as left)."""
    if participation.latest_card(participant) is None:
        return False
    if participation.judgments_left(participant) == 0:
        return True
    pending = participant.judgments.filter(verdict="", hypothesis__hidden_at__isnull=True)
    return not pending.exists() and participation.pairs_left(participant) == 0


@transaction.atomic
def record_survey(*, participant: Participant, answers: Mapping[str, Any]) -> SurveyResponse:
    """Store the legitimacy survey (answers already validated, 1-5 or None). Answering again
    replaces the answers: a participant may change their mind when they come back."""
    fields = {name: answers.get(name) for name in SURVEY_FIELDS}
    fields["comment"] = answers.get("comment") or ""
    survey, _created = SurveyResponse.objects.update_or_create(
        participant=participant, defaults=fields
    )
    return survey


def complete(*, participant: Participant) -> bool:
    """Mark the participant as having completed, once: the first call sets `completed_at`,
    later ones (a reload, a second tab) change nothing. True when this call set it."""
    updated = Participant.objects.filter(pk=participant.pk, completed_at__isnull=True).update(
        completed_at=timezone.now()
    )
    participant.refresh_from_db(fields=["completed_at"])
    return bool(updated)


def completion_redirect(participant: Participant) -> str:
    """Where a panel participant goes when done (their panel's completion page), or "".

    Only a web address: the forms accept nothing else, but the URL becomes a link on the
    participant's page, so one stored by other means (the ORM, an import) as `javascript:...`
    must not become a link that runs."""
    deliberation = participant.deliberation
    url = deliberation.completion_redirect_url.strip()
    if not (participant.panel_pid and url):
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return url


def receipt_participant(token: str) -> Participant | None:
    """The participant of a personal link. The link shows their value and where it sits, and
    nothing else: no panel id, no demographics, no transcript, no comments, no session. A
    participant whose data was erased has no receipt; nor does a draft deliberation."""
    if not token:
        return None
    return (
        Participant.objects.filter(receipt_token=token, erased_at__isnull=True)
        .exclude(deliberation__status=Deliberation.Status.DRAFT)
        .select_related("deliberation")
        .first()
    )

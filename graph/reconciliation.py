"""Reconciliation: what the scoring runs say, per question and context, and how sure it is.

Two halves:

- **At scoring time** (`with_scoring_extras`, called once by `graph.pipeline.run_scoring`):
  the bootstrap over participants (per context, under "bootstrap") and the demographic group
  results with bridging values (top level, under "groups"), computed by the pure functions of
  `graph.algorithms` and stored in the run's results JSON (see /work/shared/CONTRACT_RESULTS.md).
- **At reading time** (`reconcile`, `compare_flagged`): view models built from stored
  `ScoringRun.results` only. Nothing is recomputed here, so a page can never disagree with the
  numbers the algorithms produced, and it costs a few queries whatever the size of the graph.
  Every key added after the first runs may be missing from an older run; readers say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings

from elicit.models import Context, Deliberation, Participant, Question
from graph import algorithms
from graph.models import CanonicalValue, ScoringRun

if TYPE_CHECKING:
    from graph.pipeline import ScoringInput


# --- At scoring time --------------------------------------------------------------------------


def group_fields(deliberation: Deliberation) -> list[tuple[str, str]]:
    """(key, label) of the demographic fields that define groups: those with a fixed list of
    choices. A free-text field would make one group per spelling, so it defines none."""
    return [
        (str(spec["key"]), str(spec.get("label") or spec["key"]))
        for spec in deliberation.demographic_fields or []
        if isinstance(spec, Mapping) and spec.get("key") and spec.get("choices")
    ]


def participant_groups(
    *, deliberation: Deliberation, participant_ids: set[int]
) -> dict[str, dict[int, str]]:
    """Field key -> participant id -> their answer, for the group fields of the deliberation.
    Participants who did not answer a field are in no group of it."""
    fields = group_fields(deliberation)
    answers = Participant.objects.filter(pk__in=participant_ids).values_list("pk", "demographics")
    groups: dict[str, dict[int, str]] = {key: {} for key, _ in fields}
    for pk, demographics in answers:
        for key, _ in fields:
            answer = (demographics or {}).get(key)
            if answer not in (None, ""):
                groups[key][pk] = str(answer)
    return groups


def extras_key(*, deliberation: Deliberation, inputs: ScoringInput) -> dict[str, Any]:
    """What the extras depend on beyond the judgments: the bootstrap settings, and the group
    fields with each judging participant's answers (a digest). Stored in the run, so that a
    run is reused only when its extras would come out the same."""
    people = {row[0] for row in inputs.rows}
    groups = participant_groups(deliberation=deliberation, participant_ids=people)
    text = json.dumps(
        [group_fields(deliberation), {k: sorted(v.items()) for k, v in groups.items()}],
        sort_keys=True,
    )
    return {
        "bootstrap_samples": settings.BOOTSTRAP_SAMPLES,
        "bootstrap_seed": settings.BOOTSTRAP_SEED,
        "groups_digest": hashlib.sha256(text.encode()).hexdigest(),
    }


def with_scoring_extras(
    results: dict[str, Any],
    *,
    deliberation: Deliberation,
    inputs: ScoringInput,
    params: algorithms.ScoringParams,
    result: algorithms.ScoringResult,
) -> dict[str, Any]:
    """The run's results with the bootstrap (per context) and the groups (top level) added.

    The bootstrap uses ``BOOTSTRAP_SAMPLES`` samples drawn with ``BOOTSTRAP_SEED``: the same
    judgments and settings give the same figures. Groups compare with the PageRank winners
    (the reference method), whichever estimator is primary.
    """
    judgments = inputs.arrays()
    bootstrap = algorithms.bootstrap_participants(
        judgments,
        params,
        values_by_context=inputs.values_by_context,
        reference=result,
        samples=settings.BOOTSTRAP_SAMPLES,
        seed=settings.BOOTSTRAP_SEED,
    )
    contexts = [
        {**context, "bootstrap": bootstrap[context["context_id"]]}
        if context["context_id"] in bootstrap
        else context
        for context in results["contexts"]
    ]
    by_field = participant_groups(
        deliberation=deliberation, participant_ids={int(p) for p in judgments.participant}
    )
    fields = []
    for key, label in group_fields(deliberation):
        groups = by_field[key]
        fields.append(
            {
                "field": key,
                "label": label,
                **algorithms.group_results(
                    judgments,
                    params,
                    groups=groups,
                    reference=result,
                    values_by_context=inputs.values_by_context,
                ),
                "bridging": algorithms.bridging_values(judgments, result.edges, groups=groups),
            }
        )
    return {
        **results,
        "contexts": contexts,
        "groups": {"fields": fields},
        "research_inputs": extras_key(deliberation=deliberation, inputs=inputs),
    }


# --- At reading time --------------------------------------------------------------------------


def latest_run(deliberation: Deliberation, *, include_flagged: bool = False) -> ScoringRun | None:
    return ScoringRun.objects.filter(
        deliberation=deliberation, status=ScoringRun.Status.DONE, include_flagged=include_flagged
    ).first()


def chosen_run(deliberation: Deliberation, run_id: str | None) -> ScoringRun | None:
    """The run named by ``?run=`` (a done run of this deliberation), else the latest one."""
    if run_id and run_id.isdigit():
        run = ScoringRun.objects.filter(
            deliberation=deliberation, pk=int(run_id), status=ScoringRun.Status.DONE
        ).first()
        if run is not None:
            return run
    return latest_run(deliberation)


@dataclasses.dataclass
class Evidence:
    """A kept edge into a value: the judgments behind the upgrade towards it."""

    from_title: str
    upgrade: int
    total: int
    likelihood: float
    entropy: float


@dataclasses.dataclass
class ValueRow:
    value_id: int
    title: str
    score: float
    rank: int
    is_winner: bool
    ci_low: float | None = None
    ci_high: float | None = None
    win_rate: float | None = None
    bt_strength: float | None = None
    bt_se: float | None = None
    evidence: list[Evidence] = dataclasses.field(default_factory=list)

    @property
    def judgments(self) -> int:
        return sum(e.total for e in self.evidence)

    @property
    def win_percent(self) -> int | None:
        return None if self.win_rate is None else round(100 * self.win_rate)


@dataclasses.dataclass
class GroupRow:
    group: str
    participants: int
    judgments: int
    winners: list[str]
    winner_wins: bool | None
    winner_score: float | None
    winner_rank: int | None
    is_worst: bool


@dataclasses.dataclass
class GroupField:
    field: str
    label: str
    overall_score: float | None
    rows: list[GroupRow]
    worst: GroupRow | None
    all_groups_agree: bool
    bridging: list[dict[str, Any]]


@dataclasses.dataclass
class ContextView:
    context: Context
    support: str
    z_score: float | None
    ratio: float | None
    n_edges: int
    values: list[ValueRow]
    has_bootstrap: bool
    bootstrap_samples: int | None
    has_bradley_terry: bool
    estimators_agree: bool | None
    bt_winners: list[str]
    groups: list[GroupField]

    @property
    def winners(self) -> list[ValueRow]:
        return [v for v in self.values if v.is_winner]


@dataclasses.dataclass
class QuestionView:
    question: Question
    contexts: list[ContextView]


@dataclasses.dataclass
class Reconciliation:
    run: ScoringRun
    questions: list[QuestionView]
    primary: str
    has_groups: bool


def _edge_rows(edges: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Edge columns (see `EdgeTable.to_columns`) as rows with stable names."""
    if not edges:
        return []
    source = edges.get("from_value", edges.get("from", []))
    target = edges.get("to_value", edges.get("to", []))
    n = len(edges.get("context", []))
    return [
        {
            "context": edges["context"][i],
            "from": source[i],
            "to": target[i],
            "upgrade": edges.get("upgrade", [0] * n)[i],
            "total": edges.get("total", [0] * n)[i],
            "likelihood": edges.get("likelihood", [0.0] * n)[i],
            "entropy": edges.get("entropy", [0.0] * n)[i],
            "kept": edges.get("kept", [False] * n)[i],
        }
        for i in range(n)
    ]


def _aligned(block: Mapping[str, Any] | None, key: str, i: int) -> float | None:
    if not block or key not in block or i >= len(block[key]):
        return None
    return block[key][i]


def _context_view(
    data: Mapping[str, Any],
    context: Context,
    titles: Mapping[int, str],
    evidence: Mapping[tuple[int, int], list[Evidence]],
    groups: list[GroupField],
) -> ContextView:
    values, scores = data.get("values", []), data.get("scores", [])
    winners = set(data.get("winners", []))
    bootstrap = data.get("bootstrap")
    bt = data.get("bradley_terry")
    rows = [
        ValueRow(
            value_id=value,
            title=titles.get(value, f"#{value}"),
            score=scores[i],
            rank=1 + sum(1 for s in scores if s > scores[i]),
            is_winner=value in winners,
            ci_low=_aligned(bootstrap, "ci_low", i),
            ci_high=_aligned(bootstrap, "ci_high", i),
            win_rate=_aligned(bootstrap, "win_rate", i),
            bt_strength=_aligned(bt, "strength", i),
            bt_se=_aligned(bt, "se", i),
            evidence=evidence.get((context.pk, value), []),
        )
        for i, value in enumerate(values)
    ]
    rows.sort(key=lambda r: (r.rank, r.value_id))
    return ContextView(
        context=context,
        support=data.get("support", ""),
        z_score=data.get("z_score"),
        ratio=data.get("ratio"),
        n_edges=data.get("n_edges", 0),
        values=rows,
        has_bootstrap=bootstrap is not None,
        bootstrap_samples=(bootstrap or {}).get("samples"),
        has_bradley_terry=bt is not None,
        estimators_agree=data.get("estimators_agree"),
        bt_winners=[titles.get(v, f"#{v}") for v in (bt or {}).get("winners", [])],
        groups=groups,
    )


def _group_fields(
    results: Mapping[str, Any], titles: Mapping[int, str]
) -> dict[int, list[GroupField]]:
    """Context id -> the group figures of each demographic field for that context."""
    out: dict[int, list[GroupField]] = defaultdict(list)
    for field in (results.get("groups") or {}).get("fields", []):
        bridging: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for entry in field.get("bridging", []):
            bridging[entry["context_id"]].append(
                {**entry, "title": titles.get(entry["value"], f"#{entry['value']}")}
            )
        for context in field.get("contexts", []):
            rows = [
                GroupRow(
                    group=row["group"],
                    participants=row.get("participants", 0),
                    judgments=row.get("judgments", 0),
                    winners=[titles.get(v, f"#{v}") for v in row.get("winners", [])],
                    winner_wins=row.get("winner_wins"),
                    winner_score=row.get("winner_score"),
                    winner_rank=row.get("winner_rank"),
                    is_worst=row["group"] == context.get("worst"),
                )
                for row in context.get("groups", [])
            ]
            out[context["context_id"]].append(
                GroupField(
                    field=field.get("field", ""),
                    label=field.get("label", field.get("field", "")),
                    overall_score=context.get("overall_score"),
                    rows=rows,
                    worst=next((r for r in rows if r.is_worst), None),
                    all_groups_agree=bool(context.get("all_groups_agree")),
                    bridging=bridging.get(context["context_id"], []),
                )
            )
    return out


def reconcile(run: ScoringRun) -> Reconciliation:
    """Per question, per context of the question: the run's values with their figures.

    A context shared by several questions is shown under each of them, with the same figures
    (scores are per context; the questions only group the contexts for reading).
    """
    results = run.results or {}
    contexts_data = {c["context_id"]: c for c in results.get("contexts", [])}
    titles = dict(
        CanonicalValue.objects.filter(deliberation=run.deliberation_id).values_list("pk", "title")
    )
    evidence: dict[tuple[int, int], list[Evidence]] = defaultdict(list)
    for edge in _edge_rows(results.get("edges") or {}):
        if edge["kept"]:
            evidence[(edge["context"], edge["to"])].append(
                Evidence(
                    from_title=titles.get(edge["from"], f"#{edge['from']}"),
                    upgrade=edge["upgrade"],
                    total=edge["total"],
                    likelihood=edge["likelihood"],
                    entropy=edge["entropy"],
                )
            )
    groups = _group_fields(results, titles)
    views: dict[int, ContextView] = {}
    questions = []
    for question in Question.objects.filter(deliberation=run.deliberation_id).prefetch_related(
        "contexts"
    ):
        shown = []
        for context in question.contexts.all():
            if context.pk not in contexts_data:
                continue
            if context.pk not in views:
                views[context.pk] = _context_view(
                    contexts_data[context.pk], context, titles, evidence, groups[context.pk]
                )
            shown.append(views[context.pk])
        questions.append(QuestionView(question=question, contexts=shown))
    return Reconciliation(
        run=run,
        questions=questions,
        primary=results.get("primary", run.estimator),
        has_groups=bool((results.get("groups") or {}).get("fields")),
    )


@dataclasses.dataclass
class FlaggedComparison:
    """One context's winners without and with the flagged judgments."""

    context: Context
    without: list[tuple[str, float]]
    with_flagged: list[tuple[str, float]]
    support_without: str
    support_with: str

    @property
    def changed(self) -> bool:
        return [t for t, _ in self.without] != [t for t, _ in self.with_flagged]


def _winners(data: Mapping[str, Any], titles: Mapping[int, str]) -> list[tuple[str, float]]:
    score = dict(zip(data.get("values", []), data.get("scores", []), strict=False))
    return [(titles.get(v, f"#{v}"), score.get(v, 0.0)) for v in data.get("winners", [])]


def compare_flagged(without: ScoringRun, with_flagged: ScoringRun) -> list[FlaggedComparison]:
    """Side by side, per context: the winners of a run without the flagged judgments and of one
    with them. Only contexts present in both runs are compared."""
    titles = dict(
        CanonicalValue.objects.filter(deliberation=without.deliberation_id).values_list(
            "pk", "title"
        )
    )
    a = {c["context_id"]: c for c in (without.results or {}).get("contexts", [])}
    b = {c["context_id"]: c for c in (with_flagged.results or {}).get("contexts", [])}
    contexts = Context.objects.in_bulk(a.keys() & b.keys())
    return [
        FlaggedComparison(
            context=contexts[pk],
            without=_winners(a[pk], titles),
            with_flagged=_winners(b[pk], titles),
            support_without=a[pk].get("support", ""),
            support_with=b[pk].get("support", ""),
        )
        for pk in sorted(contexts)
    ]


def excluded_flagged(run: ScoringRun) -> int:
    """How many judgments the run left out because of open vote-quality flags."""
    return int(((run.input_counts or {}).get("excluded") or {}).get("flagged", 0))

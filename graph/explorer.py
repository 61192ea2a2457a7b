"""The graph explorer's services: which part of the latest scoring run to show, its drawing,
and the detail of one value (its card, the raw cards merged into it, the upgrades into and out
of it with their stories and votes).

Filtering: a question shows the contexts of that question, each whole (a context shared with
another question shows every value scored in it: the scoring is per context). A context must
belong to the chosen question; any other is ignored, so no filter combination mixes in the
contexts of another question.

The layout is the costly part with thousands of values; it depends only on the run and the
filter, so it is cached under those (a new run gets new keys; nothing needs invalidating).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from elicit.models import Context, Deliberation, Question, ValuesCard
from graph import layout
from graph.algorithms import EdgeRow
from graph.models import CanonicalValue, ScoringRun, UpgradeHypothesis
from graph.results import ContextScores, ParticipantResult, context_scores, edge_stats
from graph.services import visible_values

LAYOUT_VERSION = 1
LAYOUT_TIMEOUT = 24 * 3600

SUPPORT_LEGEND = [
    (layout.SUPPORT_COLOURS["broad"], _("Winner, broadly supported")),
    (layout.SUPPORT_COLOURS["some"], _("Winner, some support")),
    (layout.SUPPORT_COLOURS["contested"], _("Winner, contested")),
    (layout.OTHER_COLOUR, _("Not a winner")),
]


@dataclasses.dataclass(frozen=True)
class Filters:
    question: Question | None = None
    context: Context | None = None
    dropped: bool = False  # also draw the edges the filters left out of the graph
    ignored: tuple[str, ...] = ()  # names of parameters that were not understood

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        params = {}
        if self.question is not None:
            params["question"] = self.question.slug
        if self.context is not None:
            params["context"] = str(self.context.pk)
        if self.dropped:
            params["dropped"] = "1"
        return params


def questions(deliberation: Deliberation) -> list[Question]:
    return list(deliberation.questions.prefetch_related("contexts").order_by("position", "id"))


def parse_filters(deliberation: Deliberation, params: Mapping[str, str]) -> Filters:
    """Filters from query parameters; anything unknown is ignored (and named), never a crash."""
    ignored = []
    question = None
    if slug := params.get("question", ""):
        question = deliberation.questions.filter(slug=slug).first()
        if question is None:
            ignored.append("question")
    context = None
    if raw := params.get("context", ""):
        allowed = question.contexts.all() if question else deliberation.contexts.all()
        context = allowed.filter(pk=int(raw)).first() if raw.isdigit() else None
        if context is None:
            ignored.append("context")
    return Filters(question, context, params.get("dropped") == "1", tuple(ignored))


def contexts_in_view(deliberation: Deliberation, filters: Filters) -> list[Context]:
    if filters.context is not None:
        return [filters.context]
    return context_choices(deliberation, filters)


def context_choices(deliberation: Deliberation, filters: Filters) -> list[Context]:
    """The contexts the context filter offers: those of the chosen question, or all."""
    if filters.question is not None:
        return list(filters.question.contexts.order_by("id"))
    return list(deliberation.contexts.order_by("id"))


@dataclasses.dataclass(frozen=True)
class GraphView:
    """What the explorer draws for one filter: nodes, edges and their positions."""

    nodes: list[layout.DrawNode]
    edges: list[layout.DrawEdge]
    positions: dict[int, tuple[float, float]]
    n_kept: int
    n_dropped: int

    def svg(self, **options) -> str:
        return layout.svg(self.nodes, self.edges, self.positions, **options)


def build_nodes(
    scores: Mapping[int, ContextScores], context_ids: list[int], titles: Mapping[int, str]
) -> list[layout.DrawNode]:
    """One node per value scored in any context in view: its best score there, and the best
    support label among the contexts it wins (a context where no upgrade was kept has only
    ties, no winner worth a colour)."""
    best: dict[int, float] = {}
    support: dict[int, str] = {}
    for context_id in context_ids:
        entry = scores.get(context_id)
        if entry is None:
            continue
        for value, score in entry.scores.items():
            best[value] = max(score, best.get(value, 0.0))
            if (
                entry.compared
                and value in entry.winners
                and layout.SUPPORT_RANK.get(entry.support, 0)
                > layout.SUPPORT_RANK.get(support.get(value, ""), 0)
            ):
                support[value] = entry.support
    return [
        layout.DrawNode(v, titles.get(v, f"#{v}"), best[v], support.get(v, ""))
        for v in sorted(best)
    ]


def build_edges(rows: list[EdgeRow], *, dropped: bool) -> list[layout.DrawEdge]:
    """One edge per ordered pair in view (contexts merged: the highest likelihood, kept when
    kept in any context); the dropped ones only on request."""
    merged: dict[tuple[int, int], layout.DrawEdge] = {}
    for row in rows:
        if not row.kept and not dropped:
            continue
        key = (row.from_value, row.to_value)
        old = merged.get(key)
        merged[key] = layout.DrawEdge(
            row.from_value,
            row.to_value,
            max(row.likelihood, old.likelihood) if old else row.likelihood,
            row.kept or (old.kept if old else False),
        )
    return [merged[key] for key in sorted(merged)]


def graph_view(
    *,
    run: ScoringRun,
    context_ids: list[int],
    titles: Mapping[int, str],
    dropped: bool = False,
    cache_key: str = "",
    only: set[int] | None = None,
) -> GraphView:
    """Nodes, edges and positions of the run's contexts in view. Positions come from the kept
    edges only, so showing the dropped ones does not move anything; *only* draws a subset of
    the values (and their edges) at the places they have in the whole graph."""
    scores = context_scores(run.results)
    nodes = build_nodes(scores, context_ids, titles)
    rows = edge_stats(run.results, context_ids)
    node_ids = {n.id for n in nodes}
    rows = [r for r in rows if r.from_value in node_ids and r.to_value in node_ids]
    kept = build_edges(rows, dropped=False)

    def compute() -> dict[int, tuple[float, float]]:
        order = [n.id for n in sorted(nodes, key=lambda n: (-n.score, n.id))]
        return layout.layered_positions(
            node_ids, [(e.source, e.target) for e in kept], isolated_order=order
        )

    positions = cache.get_or_set(cache_key, compute, LAYOUT_TIMEOUT) if cache_key else compute()
    edges = build_edges(rows, dropped=True) if dropped else kept
    n_kept = len(kept)
    if only is not None:
        nodes = [n for n in nodes if n.id in only]
        edges = [e for e in edges if e.source in only and e.target in only]
        n_kept = sum(e.kept for e in edges)
    return GraphView(nodes, edges, positions, n_kept, len(edges) - n_kept)


def layout_key(run: ScoringRun, filters: Filters) -> str:
    question = filters.question.pk if filters.question else "-"
    context = filters.context.pk if filters.context else "-"
    return f"explorer-layout:{LAYOUT_VERSION}:{run.pk}:{question}:{context}"


def value_titles(deliberation: Deliberation) -> dict[int, str]:
    return dict(CanonicalValue.objects.filter(deliberation=deliberation).values_list("pk", "title"))


def explorer_view(*, deliberation: Deliberation, run: ScoringRun, filters: Filters) -> GraphView:
    """The explorer's graph for researchers: every value of the run, hidden ones included."""
    contexts = [c.pk for c in contexts_in_view(deliberation, filters)]
    return graph_view(
        run=run,
        context_ids=contexts,
        titles=value_titles(deliberation),
        dropped=filters.dropped,
        cache_key=layout_key(run, filters),
    )


def participant_svg(result: ParticipantResult) -> str:
    """The graph of the participant's question, their value outlined. Only values others may
    see are drawn (plus their own), with no links: a participant sees no research page."""
    if result.run is None or result.question is None or result.value is None:
        return ""
    question = result.question
    titles = dict(visible_values(question.deliberation).values_list("pk", "title"))
    titles[result.value.pk] = result.value.title
    view = graph_view(
        run=result.run,
        context_ids=[c.pk for c in question.contexts.order_by("id")],
        titles=titles,
        cache_key=layout_key(result.run, Filters(question=question)),
        only=set(titles),
    )
    return view.svg(mine=result.value.pk, labels=12)


# --- One value ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContextStanding:
    context: Context
    score: float
    rank: int
    size: int
    winner: bool
    support: str
    strength: tuple[float, float] | None = None  # Bradley-Terry log-strength, standard error


@dataclasses.dataclass(frozen=True)
class UpgradeRow:
    """A hypothesis into or out of the value, with the votes it got (banned participants'
    votes left out, as in scoring) and the run's statistics when it has them."""

    hypothesis: UpgradeHypothesis
    upgrade: int
    not_upgrade: int
    unsure: int
    stats: EdgeRow | None


@dataclasses.dataclass(frozen=True)
class ValueDetail:
    value: CanonicalValue
    cards: list[ValuesCard]
    joined: list[ValuesCard]  # cards whose author said "that is my value" for this one
    standings: list[ContextStanding]
    upgrades_in: list[UpgradeRow]
    upgrades_out: list[UpgradeRow]


def value_detail(
    *, deliberation: Deliberation, value: CanonicalValue, run: ScoringRun | None, filters: Filters
) -> ValueDetail:
    contexts = contexts_in_view(deliberation, filters)
    context_ids = [c.pk for c in contexts]
    standings = []
    stats: dict[tuple[int, int, int], EdgeRow] = {}
    if run is not None:
        scores = context_scores(run.results)
        for context in contexts:
            entry = scores.get(context.pk)
            if entry is None or value.pk not in entry.scores:
                continue
            standings.append(
                ContextStanding(
                    context,
                    entry.scores[value.pk],
                    entry.rank(value.pk) or 0,
                    len(entry.scores),
                    entry.compared and value.pk in entry.winners,
                    entry.support,
                    entry.strength.get(value.pk),
                )
            )
        stats = {
            (e.context, e.from_value, e.to_value): e for e in edge_stats(run.results, context_ids)
        }
    counted = Q(judgments__participant__banned_at__isnull=True)
    hypotheses = (
        UpgradeHypothesis.objects.filter(deliberation=deliberation, context__in=context_ids)
        .filter(Q(from_value=value) | Q(to_value=value))
        .select_related("context", "from_value", "to_value")
        .annotate(
            n_upgrade=Count("judgments", filter=counted & Q(judgments__verdict="upgrade")),
            n_not_upgrade=Count("judgments", filter=counted & Q(judgments__verdict="not_upgrade")),
            n_unsure=Count("judgments", filter=counted & Q(judgments__verdict="unsure")),
        )
        .order_by("context_id", "id")
    )
    rows = [
        UpgradeRow(
            h,
            h.n_upgrade,
            h.n_not_upgrade,
            h.n_unsure,
            stats.get((h.context_id, h.from_value_id, h.to_value_id)),
        )
        for h in hypotheses
    ]
    cards = ValuesCard.objects.filter(deliberation=deliberation).select_related("question")
    return ValueDetail(
        value=value,
        cards=list(cards.filter(canonical=value).order_by("id")),
        joined=list(cards.filter(chosen_canonical=value).exclude(canonical=value).order_by("id")),
        standings=standings,
        upgrades_in=[r for r in rows if r.hypothesis.to_value_id == value.pk],
        upgrades_out=[r for r in rows if r.hypothesis.from_value_id == value.pk],
    )

"""Tests of the scoring method in graph/algorithms.py (pure functions, no database).

Hand-computed cases pin the definitions; property tests (hypothesis) check the invariants a
researcher relies on: scores are a probability distribution per context, results do not depend
on input order or on how values are numbered, banned participants leave no trace, and an extra
"upgrade" vote for A -> B never hurts B relative to A (with the default filters; see
`test_monotonicity_fails_for_some_non_default_thresholds` for why not with every threshold).
"""

from __future__ import annotations

import itertools
import json
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.algorithms import (
    ALGORITHM_VERSION,
    EdgeRow,
    Judgment,
    JudgmentArrays,
    PageRankNotConvergedError,
    ScoringParams,
    ScoringResult,
    Support,
    Verdict,
    build_context_graphs,
    edge_table,
    keep_mask,
    outcome_entropy_bits,
    pagerank,
    pick_winners,
    score,
    support_label,
    wiser_likelihood,
    without_participants,
)

UP, NOT, UNSURE = Verdict.UPGRADE, Verdict.NOT_UPGRADE, Verdict.UNSURE
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Thresholds that keep every edge with net positive support: "no filters" in effect.
NO_FILTERS = ScoringParams(min_upgrades=0, min_likelihood=1e-9, max_entropy=2.0)


def votes(context: int, a: int, b: int, *verdicts: Verdict, first_participant: int = 0):
    """Judgments on the story a -> b in *context*, one participant per verdict."""
    return [
        Judgment(first_participant + i, context, a, b, verdict)
        for i, verdict in enumerate(verdicts)
    ]


def only_row(result: ScoringResult, a: int, b: int) -> EdgeRow:
    (row,) = [r for r in result.edges.rows() if (r.from_value, r.to_value) == (a, b)]
    return row


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------


def test_from_judgments_accepts_objects_tuples_names_and_codes():
    arrays = JudgmentArrays.from_judgments(
        [Judgment(7, 1, 10, 20, "upgrade"), (8, 1, 20, 10, 1), (9, 2, 10, 30, Verdict.UNSURE)]
    )
    assert arrays.participant.tolist() == [7, 8, 9]
    assert arrays.context.tolist() == [1, 1, 2]
    assert arrays.from_value.tolist() == [10, 20, 10]
    assert arrays.to_value.tolist() == [20, 10, 30]
    assert arrays.verdict.tolist() == [0, 1, 2]
    assert arrays.verdict.dtype == np.int64
    assert len(JudgmentArrays.from_judgments([])) == 0


@pytest.mark.parametrize(
    ("columns", "error"),
    [
        (([1], [1], [2], [3], [3]), ValueError),  # verdict code out of range
        (([1], [1], [2], [2], [0]), ValueError),  # a value compared with itself
        (([1, 2], [1], [2], [3], [0]), ValueError),  # ragged columns
        (([1.5], [1], [2], [3], [0]), TypeError),  # ids must be integers, never truncated
    ],
)
def test_judgment_arrays_reject_malformed_input(columns, error):
    with pytest.raises(error):
        JudgmentArrays(*(np.array(c) for c in columns))


def test_unknown_verdict_name_is_an_error():
    with pytest.raises(ValueError, match="unknown verdict"):
        Verdict.parse("maybe")


def test_without_participants_drops_exactly_their_rows():
    arrays = JudgmentArrays.from_judgments(
        [(1, 1, 10, 20, UP), (2, 1, 10, 20, UP), (3, 1, 20, 10, NOT), (2, 1, 10, 30, UP)]
    )
    kept = without_participants(arrays, {2})
    assert kept.participant.tolist() == [1, 3]
    assert without_participants(arrays, []) is arrays


# ------------------------------------------------------------------------------------------
# Evidence statistics
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "bits"),
    [
        ((4, 0, 0, 0), 0.0),  # unanimous: no disagreement
        ((1, 1, 0, 0), 1.0),  # a coin flip between two outcomes
        ((2, 1, 1, 0), 1.5),  # p = 1/2, 1/4, 1/4: 1/2*1 + 2 * 1/4*2
        ((1, 1, 1, 1), 2.0),  # the maximum with four outcomes
        ((3, 1, 0, 1), 1.3709505944546687),  # p = .6, .2, .2
        ((0, 0, 0, 0), 0.0),  # no outcomes at all
    ],
)
def test_entropy_in_bits_of_hand_made_counts(counts, bits):
    entropy = float(outcome_entropy_bits(*counts))
    assert entropy == pytest.approx(bits, abs=1e-15)
    assert math.copysign(1.0, entropy) == 1.0  # never -0.0


def test_the_published_threshold_only_bites_with_four_outcomes_in_bits():
    """Why the entropy is in bits over four outcomes: otherwise 1.69 could never exclude."""
    threshold = ScoringParams().max_entropy
    assert math.log(4) < threshold  # natural log, four outcomes: max 1.386 nats
    assert math.log2(3) < threshold  # bits, three outcomes: max 1.585 bits
    assert float(outcome_entropy_bits(1, 1, 1, 1)) > threshold


def test_entropy_is_vectorised_over_rows():
    up, no, unsure, rev = (np.array(c) for c in ([4, 1, 2], [0, 1, 1], [0, 0, 1], [0, 0, 0]))
    assert outcome_entropy_bits(up, no, unsure, rev).tolist() == [0.0, 1.0, 1.5]


def test_wiser_likelihood_of_hand_made_counts():
    assert float(wiser_likelihood(3, 1, 8)) == 0.25
    assert float(wiser_likelihood(2, 2, 5)) == 0.0
    assert float(wiser_likelihood(0, 3, 3)) == -1.0


def test_reverse_upgrades_count_against_the_edge_and_total_spans_both_directions():
    # A -> B: 3 upgrade, 1 not; B -> A: 1 upgrade, 1 unsure.
    result = score(votes(1, 10, 20, UP, UP, UP, NOT) + votes(1, 20, 10, UP, UNSURE))
    forward, backward = only_row(result, 10, 20), only_row(result, 20, 10)
    assert forward[3:8] == (3, 1, 0, 1, 6)  # upgrade, not, unsure, reverse_upgrade, total
    assert forward.likelihood == (3 - 1) / 6
    assert forward.entropy == pytest.approx(float(outcome_entropy_bits(3, 1, 0, 1)))
    assert forward.kept  # 3 >= 2, 1/3 >= 0.33, 1.37 <= 1.69
    assert backward[3:8] == (1, 0, 1, 3, 6)
    assert backward.likelihood == (1 - 3) / 6
    assert not backward.kept


def test_equal_upgrades_in_both_directions_cancel_out():
    result = score(votes(1, 10, 20, UP, UP) + votes(1, 20, 10, UP, UP, first_participant=5))
    assert only_row(result, 10, 20).likelihood == 0.0
    assert result.edges.n_kept == 0


def test_impressions_are_not_counted_a_direction_never_shown_has_no_row():
    result = score(votes(1, 10, 20, UP, UP, UP))
    assert [(r.from_value, r.to_value) for r in result.edges.rows()] == [(10, 20)]
    assert only_row(result, 10, 20).entropy == 0.0


# ------------------------------------------------------------------------------------------
# Filters at their boundaries
# ------------------------------------------------------------------------------------------


def kept(judgments, params: ScoringParams) -> bool:
    table = edge_table(JudgmentArrays.from_judgments(judgments), params)
    (row,) = [r for r in table.rows() if (r.from_value, r.to_value) == (10, 20)]
    return row.kept


def test_min_upgrades_is_inclusive():
    params = ScoringParams()  # min_upgrades = 2
    assert kept(votes(1, 10, 20, UP, UP), params)
    assert not kept(votes(1, 10, 20, UP), params)  # likelihood 1 and entropy 0 do not rescue it


def test_min_likelihood_is_inclusive():
    two_of_four = votes(1, 10, 20, UP, UP, NOT, NOT)  # likelihood exactly 0.5, entropy 1.0
    assert kept(two_of_four, ScoringParams(min_likelihood=0.5))
    assert not kept(two_of_four, ScoringParams(min_likelihood=np.nextafter(0.5, 1.0)))


def test_default_min_likelihood_one_third_passes_three_tenths_does_not():
    one_third = votes(1, 10, 20, UP, UP, NOT, NOT, NOT, NOT)  # 2/6
    three_tenths = votes(1, 10, 20, UP, UP, UP, *[NOT] * 7)  # 3/10
    assert kept(one_third, ScoringParams())
    assert not kept(three_tenths, ScoringParams())


def test_max_entropy_is_inclusive():
    coin_flip = votes(1, 10, 20, UP, UP, NOT, NOT)  # entropy exactly 1.0 bit
    lenient = {"min_likelihood": 0.5}
    assert kept(coin_flip, ScoringParams(max_entropy=1.0, **lenient))
    assert not kept(coin_flip, ScoringParams(max_entropy=np.nextafter(1.0, 0.0), **lenient))


def test_keep_mask_needs_all_three_conditions():
    params = ScoringParams()
    upgrade = np.array([2, 1, 2, 2])
    likelihood = np.array([0.5, 0.5, 0.3, 0.5])
    entropy = np.array([1.0, 1.0, 1.0, 1.7])
    assert keep_mask(upgrade, likelihood, entropy, params).tolist() == [True, False, False, False]


# ------------------------------------------------------------------------------------------
# PageRank
# ------------------------------------------------------------------------------------------


def test_two_values_one_edge_by_hand():
    """A -> B, d = 0.85, n = 2. B has no outgoing edge, so its rank is spread over both.

    x_A = (1 - d)/2 + d * x_B / 2                   = 0.075 + 0.425 x_B
    x_B = (1 - d)/2 + d * x_A + d * x_B / 2
    with x_A + x_B = 1: x_A = 0.075 + 0.425 (1 - x_A)  =>  x_A = 0.5 / 1.425 = 20/57,
    x_B = 37/57. (The edge's weight is irrelevant: it is A's only out-edge.)
    """
    result = score(votes(1, 10, 20, UP, UP, UP))
    scores = result.contexts[1].scores
    assert scores[10] == pytest.approx(20 / 57, abs=1e-12)
    assert scores[20] == pytest.approx(37 / 57, abs=1e-12)
    assert result.contexts[1].winners == (20,)


def test_isolated_value_gets_a_score_by_hand():
    """A -> B kept; C judged against A but with no kept edge. n = 3, d = 0.85.

    Nothing flows into A or C except teleport and the dangling rank of B and C, so x_A = x_C:
    x_A = 0.05 + 0.85 (x_B + x_C) / 3, and x_B = 1 - 2 x_A gives
    x_A = 0.05 + 0.85 (1 - x_A) / 3  =>  x_A (3 + 0.85) = 0.15 + 0.85  =>  x_A = 20/77,
    x_B = 37/77.
    """
    result = score(votes(1, 10, 20, UP, UP) + votes(1, 10, 30, NOT, NOT, first_participant=5))
    scores = result.contexts[1].scores
    assert scores == pytest.approx({10: 20 / 77, 20: 37 / 77, 30: 20 / 77}, abs=1e-12)
    assert only_row(result, 10, 30).kept is False


def test_cycle_of_equal_weights_is_a_three_way_tie():
    cycle = votes(1, 1, 2, UP, UP) + votes(1, 2, 3, UP, UP) + votes(1, 3, 1, UP, UP)
    context = score(cycle).contexts[1]
    assert context.score_array == pytest.approx([1 / 3] * 3, abs=1e-12)
    assert context.winners == (1, 2, 3)
    assert (context.support, context.z_score, context.ratio) == (Support.CONTESTED, None, None)


def test_rank_leaks_nowhere_even_when_every_value_is_dangling():
    judgments = votes(1, 1, 2, UP, UP) + votes(1, 3, 4, UP, UP) + votes(1, 2, 4, NOT)
    for context in score(judgments).contexts.values():
        assert context.score_array.sum() == pytest.approx(1.0, abs=1e-12)
    lonely = score([], values_by_context={5: [1, 2, 3, 4]}).contexts[5]
    assert lonely.score_array.tolist() == [0.25] * 4


def networkx_scores(result: ScoringResult, context_id: int) -> dict[int, float]:
    graph = nx.DiGraph()
    graph.add_nodes_from(result.contexts[context_id].values.tolist())
    for row in result.edges.for_context(context_id).rows():
        if row.kept:
            graph.add_edge(row.from_value, row.to_value, weight=row.likelihood)
    return nx.pagerank(graph, alpha=0.85, weight="weight", tol=1e-15, max_iter=2000)


def test_matches_networkx_on_a_denser_random_graph():
    rng = np.random.default_rng(7)
    n = 400
    frm = rng.integers(0, 25, n)
    to = (frm + rng.integers(1, 25, n)) % 25
    arrays = JudgmentArrays(
        participant=np.arange(n),
        context=rng.integers(0, 2, n),
        from_value=frm,
        to_value=to,
        verdict=rng.choice([0, 0, 1, 2], n),
    )
    params = ScoringParams(min_upgrades=1, min_likelihood=0.01, max_entropy=2.0)
    result = score(arrays, params)
    assert result.edges.n_kept > 50
    for context_id in result.contexts:
        expected = networkx_scores(result, context_id)
        assert result.contexts[context_id].scores == pytest.approx(expected, abs=1e-10)


def test_non_convergence_is_an_error_not_a_silent_result():
    (graph,) = build_context_graphs(
        edge_table(JudgmentArrays.from_judgments(votes(1, 10, 20, UP, UP)), ScoringParams())
    )
    with pytest.raises(PageRankNotConvergedError):
        pagerank(graph, damping=0.85, tol=1e-12, max_iter=3)


# ------------------------------------------------------------------------------------------
# Winners and support labels
# ------------------------------------------------------------------------------------------


def test_winners_include_every_value_within_the_tie_tolerance():
    values = np.array([1, 2, 3])
    assert pick_winners(values, np.array([0.4, 0.4 - 1e-12, 0.2]), tie_tolerance=1e-10) == (1, 2)
    assert pick_winners(values, np.array([0.4, 0.4 - 1e-8, 0.2]), tie_tolerance=1e-10) == (1,)
    assert pick_winners(values[:0], np.zeros(0), tie_tolerance=1e-10) == ()


def label(scores) -> tuple[Support, float | None, float | None]:
    return tuple(support_label(np.asarray(scores, dtype=float), ScoringParams()))


def test_broad_support_needs_a_high_z_and_a_large_margin():
    # One value far above ten equal ones: z = sqrt(10) = 3.16, ratio 10.
    support, z, ratio = label([0.5] + [0.05] * 10)
    assert support is Support.BROAD
    assert z == pytest.approx(math.sqrt(10))
    assert ratio == pytest.approx(10.0)


def test_high_z_without_a_2x_margin_is_only_some_support():
    support, z, ratio = label([0.2, 0.15] + [0.65 / 18] * 18)
    assert z > 2.5 and ratio < 2
    assert support is Support.SOME


def test_two_values_z_is_always_one_so_the_ratio_decides():
    assert label([0.7, 0.3])[0] is Support.SOME  # ratio 2.33 > 1.5
    support, z, _ = label([0.6, 0.4])  # ratio exactly 1.5: the rule is strict
    assert support is Support.CONTESTED
    assert z == pytest.approx(1.0)


def test_tied_winners_are_never_broadly_supported():
    support, z, ratio = label([0.3, 0.3] + [0.4 / 30] * 30)
    assert ratio == 1.0 and z > 2.5
    assert support is Support.SOME


@pytest.mark.parametrize(
    "scores", [[1.0], [0.25] * 4, [1 / 3, 1 / 3 + 1e-17, 1 / 3 - 1e-17]], ids=str
)
def test_degenerate_contexts_are_contested_with_undefined_figures(scores):
    assert label(scores) == (Support.CONTESTED, None, None)


def test_a_context_with_one_listed_value_has_it_as_uncontested_winner_label_contested():
    context = score([], values_by_context={3: [42]}).contexts[3]
    assert context.scores == {42: 1.0}
    assert context.winners == (42,)
    assert context.support is Support.CONTESTED


# ------------------------------------------------------------------------------------------
# Parameters and serialisation
# ------------------------------------------------------------------------------------------


def test_params_round_trip_through_a_dict():
    params = ScoringParams(min_upgrades=3, max_entropy=1.5)
    assert ScoringParams.from_dict(params.to_dict()) == params
    with pytest.raises(TypeError):
        ScoringParams.from_dict({**params.to_dict(), "surprise": 1})


@pytest.mark.parametrize(
    "bad",
    [{"min_likelihood": 0.0}, {"damping": 1.0}, {"max_entropy": -1}, {"tol": 0}, {"max_iter": 0}],
)
def test_params_that_would_break_the_method_are_refused(bad):
    with pytest.raises(ValueError):
        ScoringParams(**bad)


def test_result_serialises_to_json():
    result = score(votes(1, 10, 20, UP, UP) + votes(2, 20, 30, UP, NOT))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["algorithm_version"] == ALGORITHM_VERSION
    assert data["params"] == ScoringParams().to_dict()
    assert [c["context_id"] for c in data["contexts"]] == [1, 2]
    assert data["edges"]["kept"] == [True, False]
    assert result.edges.for_context(2).from_value.tolist() == [20]


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------

N_VALUES = 6
judgment_strategy = st.builds(
    lambda p, c, a, step, v: Judgment(p, c, a, (a + step) % N_VALUES, v),
    st.integers(0, 7),
    st.integers(0, 2),
    st.integers(0, N_VALUES - 1),
    st.integers(1, N_VALUES - 1),
    st.sampled_from([UP, UP, UP, NOT, UNSURE]),  # upgrade-heavy, so that edges survive
)
judgment_lists = st.lists(judgment_strategy, max_size=80)
params_strategy = st.builds(
    ScoringParams,
    min_upgrades=st.integers(0, 3),
    min_likelihood=st.floats(0.01, 1.0),
    max_entropy=st.floats(0.0, 2.0),
)


@PROPERTY_SETTINGS
@given(judgment_lists, params_strategy)
def test_every_context_sums_to_one(judgments, params):
    for context in score(judgments, params).contexts.values():
        assert abs(context.score_array.sum() - 1.0) < 1e-9
        assert (context.score_array > 0).all()


@PROPERTY_SETTINGS
@given(judgment_lists, params_strategy, st.randoms(use_true_random=False))
def test_input_order_changes_no_bit(judgments, params, random):
    shuffled = list(judgments)
    random.shuffle(shuffled)
    assert json.dumps(score(judgments, params).to_dict()) == json.dumps(
        score(shuffled, params).to_dict()
    )


@PROPERTY_SETTINGS
@given(judgment_lists, params_strategy)
def test_a_context_depends_only_on_its_own_judgments(judgments, params):
    everything = score(judgments, params)
    for context_id, context in everything.contexts.items():
        alone = score([j for j in judgments if j.context_id == context_id], params)
        assert alone.contexts[context_id].to_dict() == context.to_dict()


@PROPERTY_SETTINGS
@given(
    judgment_lists,
    params_strategy,
    st.permutations(range(N_VALUES)),
    st.integers(-(10**12), 10**12),
)
def test_relabelling_values_relabels_the_result(judgments, params, permutation, shift):
    """Renumbering values changes only the order of floating-point sums (hence 1e-12)."""
    relabel = {v: permutation[v] * 1000 + shift for v in range(N_VALUES)}
    renamed = [
        Judgment(
            j.participant_id, j.context_id, relabel[j.from_value], relabel[j.to_value], j.verdict
        )
        for j in judgments
    ]
    before, after = score(judgments, params), score(renamed, params)
    assert before.contexts.keys() == after.contexts.keys()
    for context_id, old in before.contexts.items():
        new = after.contexts[context_id]
        mapped = {relabel[v]: s for v, s in old.scores.items()}
        assert new.scores == pytest.approx(mapped, abs=1e-12)
        assert set(new.winners) == {relabel[v] for v in old.winners}
        assert new.support is old.support
    old_rows = {
        (r.context, relabel[r.from_value], relabel[r.to_value], *r[3:]) for r in before.edges.rows()
    }
    assert old_rows == {tuple(r) for r in after.edges.rows()}


@PROPERTY_SETTINGS
@given(judgment_lists, params_strategy, st.sets(st.integers(0, 7)))
def test_dropping_a_participant_equals_never_having_had_them(judgments, params, banned):
    filtered = without_participants(JudgmentArrays.from_judgments(judgments), banned)
    never = [j for j in judgments if j.participant_id not in banned]
    assert score(filtered, params).to_dict() == score(never, params).to_dict()


@st.composite
def dense_judgments(draw: st.DrawFn, n_values: int = 4) -> list[Judgment]:
    """Many judgments on few pairs of one context: explores the count space of each edge,
    including the vote splits where filters flip, which sparse random lists rarely reach."""
    participants = itertools.count()
    judgments = []
    for a, b in itertools.permutations(range(n_values), 2):
        counts = draw(st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(0, 3)))
        for verdict, count in zip((UP, NOT, UNSURE), counts, strict=True):
            judgments += [Judgment(next(participants), 0, a, b, verdict) for _ in range(count)]
    return judgments


def relative_standing(judgments, params, context_id, a, b) -> tuple[float, float]:
    """(score_b - score_a, score_b / score_a), with every value a node of every context."""
    universe = {c: range(N_VALUES) for c in range(3)}
    scores = score(judgments, params, values_by_context=universe).contexts[context_id].scores
    return scores[b] - scores[a], scores[b] / scores[a]


@PROPERTY_SETTINGS
@given(
    st.one_of(judgment_lists, dense_judgments()),
    st.integers(0, 2),
    st.integers(0, N_VALUES - 1),
    st.integers(1, N_VALUES - 1),
    st.integers(0, 10**6),
    st.sampled_from([ScoringParams(), NO_FILTERS]),
)
def test_an_extra_upgrade_vote_never_hurts_b_relative_to_a(
    judgments, context_id, a, step, pick, params
):
    """One more "upgrade" on A -> B never lowers B's score relative to A's (difference and ratio).

    What the vote changes: A -> B gains an upgrade and likelihood ((u - r + 1)/(t + 1) >=
    (u - r)/t, since u - r <= t); B -> A gains a reverse upgrade, so it loses likelihood and
    keeps its upgrade count; no other edge changes. If the filters react monotonically, the
    graph can only move in B's favour: A -> B may appear or get heavier, B -> A may get lighter
    or disappear. That PageRank then never lowers B relative to A is what this test checks
    (a random search over 200,000 small weighted graphs found no counterexample either).

    The filters do *not* always react monotonically: an extra upgrade raises the entropy when
    upgrades are a minority outcome, which can drop A -> B (counterexample in
    `test_monotonicity_fails_for_some_non_default_thresholds`). With the default thresholds
    it cannot happen, because an edge passing min_likelihood = 0.33 has upgrades as a large
    enough share (exhaustive check in `test_default_filters_react_monotonically_to_an_upgrade`),
    and without filters it cannot happen at all; so the strongest true statement, tested here,
    is the property for those two settings. Half the time the extra vote goes to a story that
    already has judgments, where filters are most likely to flip. Every value is listed for
    every context so that the node set, and hence the teleport share, stays the same.
    """
    if judgments and pick % 2:
        story = judgments[pick % len(judgments)]
        context_id, a, b = story.context_id, story.from_value, story.to_value
    else:
        b = (a + step) % N_VALUES
    extra = Judgment(99, context_id, a, b, UP)
    diff_before, ratio_before = relative_standing(judgments, params, context_id, a, b)
    diff_after, ratio_after = relative_standing([*judgments, extra], params, context_id, a, b)
    assert diff_after >= diff_before - 1e-10
    assert ratio_after >= ratio_before * (1 - 1e-9)


def test_default_filters_react_monotonically_to_an_upgrade():
    """Exhaustive over all count vectors up to 12: an extra upgrade on A -> B never drops a
    kept A -> B, and never makes B -> A kept (the reverse row gains a reverse_upgrade).

    The grid leaves out the verdicts that only enlarge ``total`` (B -> A's "not"/"unsure" for
    the A -> B row, and vice versa). That loses nothing: they lower the likelihood before and
    after alike and do not enter the entropy, so a violation with them is also one without.
    (A wider search, all four counts up to 120, found no violation either.)
    """
    params = ScoringParams()
    grid = np.array(list(itertools.product(range(13), repeat=4)))[1:].T  # skip all-zero
    up, no, unsure, rev = grid  # A -> B verdicts and B -> A upgrades
    total = up + no + unsure + rev  # the most favourable total: no other B -> A verdicts

    def kept_ab(u):
        lik = wiser_likelihood(u, rev, total + (u - up))
        return keep_mask(u, lik, outcome_entropy_bits(u, no, unsure, rev), params)

    assert not np.any(kept_ab(up) & ~kept_ab(up + 1))

    # Reverse row B -> A: its own verdicts are (rev, no, unsure) in the grid's roles, and
    # A -> B's upgrades are its reverse_upgrade.
    def kept_ba(u):
        lik = wiser_likelihood(rev, u, total + (u - up))
        return keep_mask(rev, lik, outcome_entropy_bits(rev, no, unsure, u), params)

    assert not np.any(~kept_ba(up) & kept_ba(up + 1))


def test_monotonicity_fails_for_some_non_default_thresholds():
    """Counterexample: with min_likelihood 0.2 and max_entropy 0.85 an upgrade vote hurts B.

    A -> B has 2 upgrades and 6 "not an upgrade": likelihood 0.25, entropy 0.811 bits, kept.
    One more upgrade: likelihood 0.33, but entropy 0.918 bits > 0.85, so the edge is dropped
    and B loses the rank A sent it. This is why the property test uses default thresholds.
    """
    params = ScoringParams(min_likelihood=0.2, max_entropy=0.85)
    judgments = votes(0, 0, 1, UP, UP, NOT, NOT, NOT, NOT, NOT, NOT)
    diff_before, _ = relative_standing(judgments, params, 0, 0, 1)
    diff_after, _ = relative_standing([*judgments, Judgment(99, 0, 0, 1, UP)], params, 0, 0, 1)
    assert diff_after < diff_before - 0.1


# ------------------------------------------------------------------------------------------
# Bradley-Terry, the second estimator
# ------------------------------------------------------------------------------------------


def bt(result: ScoringResult, context: int = 1) -> dict[int, tuple[float, float]]:
    """value -> (log-strength, standard error) in the context."""
    fit = result.contexts[context].bradley_terry
    return {
        int(v): (float(s), float(e))
        for v, s, e in zip(fit.values, fit.strength, fit.se, strict=True)
    }


def test_bradley_terry_of_two_values_is_the_log_odds_of_their_record():
    """B beats A 30 times ("upgrade" on A -> B) and A holds 10 times ("not an upgrade"); with
    a negligible prior the maximum-likelihood gap is log(30 / 10), and its standard error
    the textbook sqrt(1/30 + 1/10)."""
    judgments = votes(1, 10, 20, *([UP] * 30 + [NOT] * 10))
    flat_prior = ScoringParams(bt_prior_sd=1e4)
    result = score(judgments, flat_prior)
    fit = bt(result)
    gap_se = math.sqrt(1 / 30 + 1 / 10)
    assert fit[20][0] - fit[10][0] == pytest.approx(math.log(3), abs=1e-6)
    assert result.contexts[1].bradley_terry.margin_z == pytest.approx(math.log(3) / gap_se)
    # Relative to the mean of the two, each strength is half the gap, so its SE is half.
    assert fit[20][1] == pytest.approx(gap_se / 2, rel=1e-3)


def test_bradley_terry_recovers_a_clear_order():
    judgments = []
    participant = 0
    for low, high in itertools.combinations([1, 2, 3, 4], 2):
        judgments += votes(1, low, high, UP, UP, UP, NOT, first_participant=participant)
        participant += 10
    result = score(judgments)
    fit = bt(result)
    assert [v for v, _ in sorted(fit.items(), key=lambda kv: kv[1][0])] == [1, 2, 3, 4]
    context = result.contexts[1]
    assert context.bradley_terry.winners == (4,) == context.winners
    assert context.estimators_agree is True
    assert context.bradley_terry.margin_z > 0


def test_bradley_terry_calls_a_perfect_cycle_a_three_way_tie():
    cycle = votes(1, 1, 2, UP, UP) + votes(1, 2, 3, UP, UP) + votes(1, 3, 1, UP, UP)
    context = score(cycle).contexts[1]
    assert context.bradley_terry.strength == pytest.approx([0.0] * 3, abs=1e-9)
    assert context.bradley_terry.winners == (1, 2, 3)
    assert context.bradley_terry.margin_z is None
    assert context.estimators_agree is True


def test_a_value_never_compared_keeps_the_prior():
    params = ScoringParams(bt_prior_sd=1.5)
    judgments = votes(1, 1, 2, UP, UP, UP)
    result = score(judgments, params, values_by_context={1: [1, 2, 3]})
    fit = bt(result)
    assert fit[3][0] == 0.0
    # The compared values move away from the prior; the value never compared is the least
    # certain of all.
    assert fit[2][0] > 0 > fit[1][0]
    assert fit[3][1] > max(fit[1][1], fit[2][1])


def test_one_lonely_win_stays_finite_thanks_to_the_prior():
    fit = bt(score(votes(1, 1, 2, UP)))
    assert all(math.isfinite(s) and abs(s) < 5 for s, _ in fit.values())


def test_when_everyone_is_unsure_nothing_is_compared_and_all_values_tie():
    context = score(votes(1, 1, 2, UNSURE, UNSURE) + votes(1, 2, 3, UNSURE)).contexts[1]
    fit = context.bradley_terry
    assert fit.n_comparisons == 0
    assert fit.strength.tolist() == [0.0, 0.0, 0.0]
    assert fit.winners == (1, 2, 3) == context.winners
    assert context.support == Support.CONTESTED


def test_more_evidence_shrinks_the_standard_error():
    few = bt(score(votes(1, 1, 2, UP, UP, NOT)))
    many = bt(score(votes(1, 1, 2, *([UP, UP, NOT] * 20))))
    assert many[2][1] < few[2][1]


def test_when_the_estimators_disagree_support_is_never_broad():
    """Value 2 collects kept upgrade edges from five values, so PageRank puts it far ahead.
    Value 10 is never the destination of an upgrade, so PageRank gives it nothing, but it
    holds ("not an upgrade") against 2 and four others, every time: Bradley-Terry ranks it
    first."""
    judgments = []
    participant = 0
    for source in (1, 3, 4, 5, 6):
        judgments += votes(1, source, 2, UP, UP, UP, first_participant=participant)
        participant += 10
    for other in (2, 7, 8, 9, 3):
        judgments += votes(1, 10, other, *[NOT] * 5, first_participant=participant)
        participant += 10
    params = ScoringParams()
    context = score(judgments, params).contexts[1]

    assert context.winners == (2,)
    assert context.bradley_terry.winners == (10,)
    assert context.estimators_agree is False
    assert support_label(context.score_array, params).label == Support.BROAD
    assert context.support == Support.SOME
    summary = context.to_dict()
    assert (summary["estimators_agree"], summary["support"]) == (False, "some support")
    assert summary["bradley_terry"]["winners"] == [10]


def test_the_primary_estimator_is_recorded_and_picks_the_winners_to_show():
    judgments = votes(1, 1, 2, UP, UP, UP)
    result = score(judgments, primary="bradley_terry")
    assert result.to_dict()["primary"] == "bradley_terry"
    assert result.contexts[1].winners_by("bradley_terry") == (2,)
    with pytest.raises(ValueError):
        score(judgments, primary="elo")


def test_large_contexts_fall_back_to_diagonal_standard_errors():
    judgments = votes(1, 1, 2, UP, UP) + votes(1, 2, 3, UP, NOT)
    exact = score(judgments).contexts[1].bradley_terry
    cheap = score(judgments, ScoringParams(bt_exact_se_limit=2)).contexts[1].bradley_terry
    assert (exact.se_method, cheap.se_method) == ("exact", "diagonal")
    assert cheap.strength.tolist() == exact.strength.tolist()
    assert np.all(np.isfinite(cheap.se) & (cheap.se > 0))

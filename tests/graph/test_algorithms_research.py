"""The bootstrap over participants, group results and bridging values (pure, no database).

The constructed case: in one context (7), values 1, 2 and 3. Eight "left" participants say
1 -> 2 is an upgrade and 2 -> 3 is not; three "right" participants say 2 -> 3 is an upgrade.
Overall 2 -> 3 has too little net support to be kept and 2 wins; the right group alone makes 3
win.
"""

import numpy as np
import pytest

from graph import algorithms as alg

CONTEXT = 7
VALUES = {CONTEXT: [1, 2, 3]}


def left_and_right():
    rows = []
    for person in range(1, 9):  # left: 1 -> 2 is wiser, 2 -> 3 is not
        rows.append((person, CONTEXT, 1, 2, "upgrade"))
        rows.append((person, CONTEXT, 2, 3, "not_upgrade"))
    for person in range(11, 14):  # right: 2 -> 3 is wiser
        rows.append((person, CONTEXT, 2, 3, "upgrade"))
    groups = {**dict.fromkeys(range(1, 9), "left"), **dict.fromkeys(range(11, 14), "right")}
    return alg.JudgmentArrays.from_judgments(rows), groups


def boot(judgments, *, seed=42, samples=60):
    params = alg.ScoringParams()
    reference = alg.score(judgments, params, values_by_context=VALUES)
    return reference, alg.bootstrap_participants(
        judgments,
        params,
        values_by_context=VALUES,
        reference=reference,
        samples=samples,
        seed=seed,
    )


def test_the_bootstrap_gives_the_same_figures_for_the_same_seed():
    judgments, _ = left_and_right()
    _, first = boot(judgments, seed=42)
    _, again = boot(judgments, seed=42)
    _, other = boot(judgments, seed=43)
    assert first == again
    assert first != other


def test_the_bootstrap_does_not_depend_on_the_order_of_the_judgments():
    judgments, _ = left_and_right()
    shuffled = judgments.select(np.random.default_rng(0).permutation(len(judgments)))
    assert boot(judgments)[1] == boot(shuffled)[1]


def test_the_interval_holds_the_score_and_win_rates_sum_to_one():
    judgments, _ = left_and_right()
    reference, result = boot(judgments)
    figures = result[CONTEXT]
    scores = reference.contexts[CONTEXT].score_array
    assert figures["samples"] == 60 and figures["seed"] == 42
    for low, score, high in zip(figures["ci_low"], scores, figures["ci_high"], strict=True):
        assert low <= score + 1e-12 and score <= high + 1e-12
    assert sum(figures["win_rate"]) == pytest.approx(1.0)
    # Value 2, the winner on all judgments, wins most samples but not all of them.
    assert reference.contexts[CONTEXT].winners == (2,)
    assert max(figures["win_rate"]) == figures["win_rate"][1]
    assert 0.5 < figures["win_rate"][1] < 1.0


def test_an_undisputed_winner_wins_every_sample():
    rows = [(p, CONTEXT, 1, 2, "upgrade") for p in range(1, 6)]
    rows += [(p, CONTEXT, 3, 2, "upgrade") for p in range(1, 6)]
    judgments = alg.JudgmentArrays.from_judgments(rows)
    _, result = boot(judgments)
    assert result[CONTEXT]["win_rate"] == [0.0, 1.0, 0.0]


def test_the_bootstrap_refuses_zero_samples():
    judgments, _ = left_and_right()
    with pytest.raises(ValueError, match="samples"):
        boot(judgments, samples=0)


def test_a_group_that_disagrees_is_named_as_the_worst_supported():
    judgments, groups = left_and_right()
    params = alg.ScoringParams()
    reference = alg.score(judgments, params, values_by_context=VALUES)
    assert reference.contexts[CONTEXT].winners == (2,)
    result = alg.group_results(
        judgments, params, groups=groups, reference=reference, values_by_context=VALUES
    )
    (context,) = result["contexts"]
    rows = {row["group"]: row for row in context["groups"]}
    assert rows["left"]["winner_wins"] is True and rows["left"]["winner_rank"] == 1
    assert rows["right"]["winner_wins"] is False
    assert rows["right"]["winners"] == [3]
    assert rows["right"]["winner_rank"] == 2
    assert context["worst"] == "right"
    assert context["all_groups_agree"] is False
    assert rows["right"]["winner_score"] < context["overall_score"]
    assert {g["group"]: g["participants"] for g in result["groups"]} == {"left": 8, "right": 3}


def test_when_every_group_makes_the_winner_win_they_agree():
    judgments, groups = left_and_right()
    everyone_left = dict.fromkeys(groups, "left")
    everyone_left.update({1: "north", 2: "north", 3: "north"})
    params = alg.ScoringParams()
    only_left = judgments.select(judgments.participant < 10)
    reference = alg.score(only_left, params, values_by_context=VALUES)
    result = alg.group_results(
        only_left, params, groups=everyone_left, reference=reference, values_by_context=VALUES
    )
    assert result["contexts"][0]["all_groups_agree"] is True


def test_a_group_without_judgments_in_a_context_gives_no_figures():
    judgments, groups = left_and_right()
    params = alg.ScoringParams()
    values = {**VALUES, 8: [1, 2]}
    reference = alg.score(judgments, params, values_by_context=values)
    result = alg.group_results(
        judgments, params, groups=groups, reference=reference, values_by_context=values
    )
    other = next(c for c in result["contexts"] if c["context_id"] == 8)
    assert all(row["judgments"] == 0 and "winner_rank" not in row for row in other["groups"])
    assert other["worst"] is None and other["all_groups_agree"] is False


def test_a_value_raised_by_two_groups_bridges_and_one_raised_by_one_does_not():
    rows = [(p, CONTEXT, 1, 2, "upgrade") for p in (1, 2, 11)]  # left, left, right -> 2
    rows += [(p, CONTEXT, 3, 1, "upgrade") for p in (1, 2)]  # left only -> 1
    judgments = alg.JudgmentArrays.from_judgments(rows)
    groups = {1: "left", 2: "left", 11: "right"}
    reference = alg.score(judgments, alg.ScoringParams(), values_by_context=VALUES)
    bridging = {
        e["value"]: e for e in alg.bridging_values(judgments, reference.edges, groups=groups)
    }
    assert bridging[2]["bridging"] is True
    assert bridging[2]["by_group"] == {"left": 2, "right": 1}
    assert bridging[1]["bridging"] is False


def test_upgrades_on_edges_the_filters_dropped_do_not_bridge():
    # One upgrade from each group: fewer than the two an edge needs, so the edge is not kept.
    judgments = alg.JudgmentArrays.from_judgments(
        [(1, CONTEXT, 1, 2, "upgrade"), (11, CONTEXT, 1, 2, "not_upgrade")]
    )
    reference = alg.score(judgments, alg.ScoringParams(), values_by_context=VALUES)
    groups = {1: "left", 11: "right"}
    assert alg.bridging_values(judgments, reference.edges, groups=groups) == []

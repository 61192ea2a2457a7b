"""Simulated participants with a planted truth (graph/simulation.py). Pure: no database."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graph import simulation
from graph.simulation import SimulationSettings


def test_the_same_seed_gives_the_same_simulation_and_another_seed_does_not():
    settings = SimulationSettings(n_participants=60)
    a, b = simulation.simulate(settings, seed=7), simulation.simulate(settings, seed=7)
    c = simulation.simulate(settings, seed=8)
    assert np.array_equal(a.rows.verdict, b.rows.verdict)
    assert np.array_equal(a.wisdom, b.wisdom)
    assert not np.array_equal(a.rows.story, c.rows.story)


def test_each_participant_judges_distinct_pairs():
    sim = simulation.simulate(SimulationSettings(n_participants=50, judgments_per_participant=8), 1)
    rows = sim.rows
    low = np.minimum(rows.from_value, rows.to_value)
    high = np.maximum(rows.from_value, rows.to_value)
    columns = (rows.participant, rows.context, low, high)
    keys = set(zip(*(c.tolist() for c in columns), strict=True))
    assert len(keys) == len(rows) == 50 * 8


def test_a_planted_order_written_by_the_researcher_is_the_truth():
    order = tuple(range(9, -1, -1))  # value 9 wisest
    sim = simulation.simulate(SimulationSettings(n_values=10, planted=(order,)), seed=1)
    assert sim.best(0) == sim.best(1) == 9
    assert list(np.argsort(-sim.wisdom[0])) == list(order)


def test_a_planted_order_must_name_every_value_once():
    with pytest.raises(ValueError):
        SimulationSettings(n_values=3, planted=((0, 1, 1),))


def test_the_unsure_share_is_about_what_was_asked():
    sim = simulation.simulate(SimulationSettings(n_participants=400, unsure_share=0.3), seed=2)
    assert abs(np.mean(sim.rows.verdict == 2) - 0.3) < 0.03


def test_with_little_noise_and_many_participants_both_estimators_find_the_truth():
    settings = SimulationSettings(n_values=8, n_participants=600, noise=0.2)
    sim = simulation.simulate(settings, seed=3)
    result = simulation.score_simulation(sim, simulation.algorithms.ScoringParams())
    figures = simulation.recovery(sim, result)
    for estimator in ("pagerank", "bradley_terry"):
        assert figures[estimator]["winner_found"] == 1.0
        assert figures[estimator]["tau"] > 0.8


def test_pure_noise_recovers_nothing():
    settings = SimulationSettings(n_values=10, n_participants=300, spread=0.0)
    sim = simulation.simulate(settings, seed=4)
    result = simulation.score_simulation(sim, simulation.algorithms.ScoringParams())
    # With no planted differences every value ties in truth: tau is undefined, reported 0.
    assert simulation.recovery(sim, result)["bradley_terry"]["tau"] == 0.0


def test_a_faction_is_flagged_and_cannot_win_once_flagged_data_is_excluded():
    settings = SimulationSettings(n_participants=300, faction_share=0.1)
    sim = simulation.simulate(settings, seed=5)
    assert len(sim.faction) == 30
    assert set(sim.own_value[sim.faction].tolist()) == {sim.faction_value}
    effect = simulation.faction_effect(
        sim, simulation.algorithms.ScoringParams(), simulation.quality.QualitySettings()
    )
    assert effect["faction_flagged"] == 1.0
    assert effect["honest_flagged"] < 0.05
    assert effect["faction_wins_excluded"] == {"pagerank": 0.0, "bradley_terry": 0.0}


def test_the_power_analysis_is_reproducible_and_reports_every_size():
    settings = SimulationSettings(n_values=8, faction_share=0.1)
    run = lambda: simulation.power_analysis(  # noqa: E731
        settings, participants=[40, 80], repeats=2, seed=11
    )
    first, second = run(), run()
    assert json.dumps(first) == json.dumps(second)
    assert [s["participants"] for s in first["sizes"]] == [40, 80]
    for size in first["sizes"]:
        assert set(size) >= {"pagerank", "bradley_terry", "faction"}
        assert 0 <= size["bradley_terry"]["winner_found"] <= 1

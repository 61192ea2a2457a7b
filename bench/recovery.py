"""Benchmark: how well PageRank and Bradley-Terry recover a planted truth (graph/simulation.py).

Run from the project root::

    .venv/bin/python bench/recovery.py                     # 50, 200, 1000 participants, 20 repeats
    .venv/bin/python bench/recovery.py --repeats 50 --seed 7

The setting of the research issue: 20 values, 2 contexts, 5 judgments per participant, judges
who call the truly wiser value the upgrade with a logistic chance (noise 1; the planted wisdom
spans 6 logits, the spread at which PageRank's figures match those the issue reports). For
each number of participants, ``--repeats`` simulations, each scored by the real scoring
(graph/algorithms.py): per estimator the mean Kendall tau between planted and estimated order
(with its 10th-90th percentiles) and the share of (simulation, context) where the planted
winner is found alone. Then the faction scenario: 10% of the participants always vote for one
value (of middle planted rank); the vote-quality rules (graph/quality.py) run on the same
data, and the faction's value is scored with flagged data included and excluded. Last, the
time of a Bradley-Terry fit at the largest size. Same seed, same figures. The last line
printed is one JSON object with every figure and whether the issue's targets are met:
Bradley-Terry tau >= 0.85 at 200 participants, and a 10% faction flagged and unable to make
its value win once flagged data is excluded.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph import algorithms, simulation

SEED = 20240415
TARGET_BT_TAU_200 = 0.85
FACTION_SHARE = 0.1


def print_sizes(title: str, report: dict) -> None:
    print(title)
    for size in report["sizes"]:
        cells = []
        for name in ("pagerank", "bradley_terry"):
            e = size[name]
            cells.append(
                f"{name:>13}: tau {e['tau_mean']:.3f} [{e['tau_p10']:.2f}-{e['tau_p90']:.2f}]"
                f" winner {e['winner_found']:.0%}"
            )
        print(f"  {size['participants']:>5} participants  " + "  ".join(cells))
        if "faction" in size:
            f = size["faction"]
            print(
                f"         faction flagged {f['faction_flagged']:.0%}, honest flagged "
                f"{f['honest_flagged']:.1%}; its value wins with flagged data "
                f"PR {f['wins_included']['pagerank']:.0%} / BT "
                f"{f['wins_included']['bradley_terry']:.0%}, without "
                f"PR {f['wins_excluded']['pagerank']:.0%} / BT "
                f"{f['wins_excluded']['bradley_terry']:.0%}; BT tau with "
                f"{f['tau_included']['bradley_terry']:.3f}, without "
                f"{f['tau_excluded']['bradley_terry']:.3f}"
            )


def fit_time(participants: int, seed: int, repeat: int = 5) -> dict[str, float]:
    """Best-of-*repeat* wall time of the whole scoring and of the Bradley-Terry fits alone."""
    sim = simulation.simulate(simulation.SimulationSettings(n_participants=participants), seed)
    params = algorithms.ScoringParams()
    judgments = sim.judgments()
    edges = algorithms.edge_table(judgments, params)
    graphs = algorithms.build_context_graphs(edges, values_by_context=sim.values_by_context())
    best_score = best_bt = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        algorithms.score(judgments, params, values_by_context=sim.values_by_context())
        best_score = min(best_score, time.perf_counter() - start)
        start = time.perf_counter()
        for graph in graphs:
            algorithms.fit_bradley_terry(
                graph.context_id, graph.values, edges.for_context(graph.context_id), params
            )
        best_bt = min(best_bt, time.perf_counter() - start)
    return {"participants": participants, "score_seconds": best_score, "bt_seconds": best_bt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--participants", default="50,200,1000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.participants.split(",")]

    print(f"python {platform.python_version()}, seed {args.seed}, {args.repeats} repeats")
    start = time.perf_counter()
    honest = simulation.power_analysis(
        simulation.SimulationSettings(), participants=sizes, repeats=args.repeats, seed=args.seed
    )
    print_sizes("The issue's setting (20 values, 2 contexts, 5 judgments each, noise 1):", honest)
    faction = simulation.power_analysis(
        simulation.SimulationSettings(faction_share=FACTION_SHARE),
        participants=sizes,
        repeats=args.repeats,
        seed=args.seed,
    )
    print_sizes(f"With a faction of {FACTION_SHARE:.0%} pushing one value:", faction)
    timing = fit_time(max(sizes), args.seed)
    print(
        f"Scoring {timing['participants']} participants: {timing['score_seconds'] * 1000:.1f} ms,"
        f" of which Bradley-Terry fits {timing['bt_seconds'] * 1000:.1f} ms"
    )
    elapsed = time.perf_counter() - start

    def at(report, n):
        return next((s for s in report["sizes"] if s["participants"] == n), None)

    honest_200 = at(honest, 200)
    targets = {}
    if honest_200:
        targets["bt_tau_200"] = honest_200["bradley_terry"]["tau_mean"] >= TARGET_BT_TAU_200
    targets["faction_flagged"] = all(
        s["faction"]["faction_flagged"] >= 0.99 for s in faction["sizes"] if "faction" in s
    )
    targets["faction_cannot_win_excluded"] = all(
        s["faction"]["wins_excluded"]["bradley_terry"] == 0.0
        for s in faction["sizes"]
        if "faction" in s and s["participants"] >= 200
    )
    print(f"Targets: {targets}  ({elapsed:.1f} s)")
    print(
        json.dumps(
            {
                "benchmark": "recovery",
                "seed": args.seed,
                "repeats": args.repeats,
                "honest": honest["sizes"],
                "faction": faction["sizes"],
                "timing": timing,
                "targets": targets,
                "seconds": elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()

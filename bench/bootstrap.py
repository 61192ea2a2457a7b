"""Benchmark of the scoring-time research figures: the bootstrap over participants and the
group results (graph/algorithms.py), on the synthetic deliberations of bench/scoring.py.

Run from the project root::

    .venv/bin/python bench/bootstrap.py                          # the default ladder
    .venv/bin/python bench/bootstrap.py --sizes 115:1600 --samples 200

For each size (values:judgments) it reports the time of one `score()`, of the bootstrap with
``--samples`` samples (each sample is one full scoring of a resample of the participants, so
it costs about samples x score), and of the group results for a field with 4 groups. The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scoring import parse_sizes, synthetic_deliberation
from graph.algorithms import ScoringParams, bootstrap_participants, group_results, score

# The reference deployment (115 values, 1,592 judgments), then 10x and 100x its judgments.
LADDER = ((115, 1_600), (1_000, 10_000), (10_000, 100_000))


def run_size(n_values: int, n_judgments: int, *, samples: int) -> dict[str, object]:
    judgments = synthetic_deliberation(n_values, n_judgments)
    params = ScoringParams()
    start = time.perf_counter()
    reference = score(judgments, params)
    score_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap_participants(judgments, params, reference=reference, samples=samples, seed=1)
    bootstrap_seconds = time.perf_counter() - start
    people = np.unique(judgments.participant)
    groups = {int(p): ("a", "b", "c", "d")[int(p) % 4] for p in people}
    start = time.perf_counter()
    group_results(judgments, params, groups=groups, reference=reference)
    groups_seconds = time.perf_counter() - start
    return {
        "values": n_values,
        "judgments": n_judgments,
        "participants": len(people),
        "samples": samples,
        "score_seconds": round(score_seconds, 4),
        "bootstrap_seconds": round(bootstrap_seconds, 3),
        "bootstrap_over_score": round(bootstrap_seconds / score_seconds, 1),
        "groups_seconds": round(groups_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=list(LADDER))
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for n_values, n_judgments in args.sizes:
        row = run_size(n_values, n_judgments, samples=args.samples)
        print(
            f"{n_values:>7} values {n_judgments:>9} judgments: score {row['score_seconds']} s, "
            f"bootstrap x{args.samples} {row['bootstrap_seconds']} s, "
            f"groups {row['groups_seconds']} s"
        )
        rows.append(row)
    print(json.dumps({"benchmark": "bootstrap", "sizes": rows}))


if __name__ == "__main__":
    main()

"""Benchmark of the moral-graph scoring (graph/algorithms.py) on synthetic deliberations.

Run from the project root::

    .venv/bin/python bench/scoring.py                      # the full ladder
    .venv/bin/python bench/scoring.py --sizes 1000:10000   # values:judgments, comma-separated

For each size it reports the wall time of `score()` (counting, filtering, PageRank of every
context, winners and labels, and the Bradley-Terry fit of every context), the time of each
stage, the peak memory of `score()` measured with tracemalloc (allocations made while it
runs, numpy buffers included; it does not see memory held before the call, such as the input
columns) and the process's ru_maxrss (a
high-water mark of the whole process: its delta only shows memory beyond earlier peaks), and the
time of a *bare* scipy.sparse power iteration on the very matrices `score()` built (same
damping, dangling redistribution and stopping rule; nothing else). The ratios
pagerank/bare and total/bare show what the method's bookkeeping costs on top of the
irreducible linear algebra. The last line printed is one JSON object with every figure.

The synthetic data imitate the real pipeline rather than uniform noise: values carry a latent
"wisdom" and a position in embedding space; each value belongs to one or two of the
contexts; hypotheses pair values that are close in embedding space within a context (as the
pipeline pairs nearest canonical values), mostly oriented from the less to the more wise
value (the LLM is usually right), with some stories also shown in reverse as controls; and
each hypothesis collects several judgments whose verdicts depend on the wisdom difference.
So many edges gather enough consistent votes to pass the filters, and some do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph.algorithms import (
    ContextGraph,
    JudgmentArrays,
    ScoringParams,
    build_context_graphs,
    edge_table,
    fit_bradley_terry,
    pagerank,
    pick_winners,
    score,
    support_label,
)

LADDER = ((1_000, 10_000), (10_000, 100_000), (100_000, 1_000_000))
TARGET_SECONDS = 10.0
TARGET_PAGERANK_OVER_BARE = 1.5
N_CONTEXTS = 10
JUDGMENTS_PER_HYPOTHESIS = 6
SEED = 20240415
MIN_BATCH_SECONDS = 0.2


def synthetic_deliberation(
    n_values: int, n_judgments: int, *, n_contexts: int = N_CONTEXTS, seed: int = SEED
) -> JudgmentArrays:
    """Judgments of a plausible deliberation, fully vectorised and seeded (see module doc)."""
    rng = np.random.default_rng(seed)
    wisdom = rng.normal(size=n_values)
    embedding = rng.random(n_values)

    # Each value is relevant to a home context, and 30% of values to a second one.
    home = rng.integers(0, n_contexts, n_values)
    second = rng.integers(0, n_contexts, n_values)
    has_second = (rng.random(n_values) < 0.3) & (second != home)
    member_value = np.concatenate([np.arange(n_values), np.flatnonzero(has_second)])
    member_context = np.concatenate([home, second[has_second]])
    # Pools: the values of each context, ordered by embedding, so that neighbours are similar.
    order = np.lexsort((embedding[member_value], member_context))
    pool_value, pool_context = member_value[order], member_context[order]
    pool_size = np.bincount(pool_context, minlength=n_contexts)
    pool_start = np.concatenate([[0], np.cumsum(pool_size)[:-1]])

    # Hypotheses: a value and one of its 20 nearest neighbours in the same context.
    n_hypotheses = n_judgments // JUDGMENTS_PER_HYPOTHESIS
    position = rng.integers(0, len(pool_value), n_hypotheses)
    context = pool_context[position]
    offset = rng.integers(1, 11, n_hypotheses) * rng.choice([-1, 1], n_hypotheses)
    neighbour = np.clip(
        position + offset, pool_start[context], pool_start[context] + pool_size[context] - 1
    )
    a, b = pool_value[position], pool_value[neighbour]
    distinct = a != b
    context, a, b = context[distinct], a[distinct], b[distinct]
    # One hypothesis per unordered pair and context.
    key = np.stack([context, np.minimum(a, b), np.maximum(a, b)], axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    context, a, b = context[first], a[first], b[first]
    # The LLM orients 80% of stories from the less wise to the wiser value.
    right = wisdom[a] < wisdom[b]
    follows = rng.random(len(a)) < 0.8
    source = np.where(right == follows, a, b)
    target = np.where(right == follows, b, a)
    control = rng.random(len(a)) < 0.15  # also shown in reverse

    # Judgments: each picks a hypothesis; controls are shown reversed half of the time.
    pick = rng.integers(0, len(a), n_judgments)
    reverse = control[pick] & (rng.random(n_judgments) < 0.5)
    shown_from = np.where(reverse, target[pick], source[pick])
    shown_to = np.where(reverse, source[pick], target[pick])
    gain = wisdom[shown_to] - wisdom[shown_from]
    # Noisy voters: even a clear upgrade gets "upgrade" from at most 60%, and 15% are unsure.
    # This keeps about 48% of the edge rows, close to the reference deployment (71 of 152).
    p_upgrade = 0.6 / (1.0 + np.exp(-1.5 * gain))
    u = rng.random(n_judgments)
    verdict = np.where(u < p_upgrade, 0, np.where(u < p_upgrade + 0.15, 2, 1))
    return JudgmentArrays(
        participant=rng.integers(0, max(1, n_judgments // 4), n_judgments),
        context=context[pick],
        from_value=shown_from,
        to_value=shown_to,
        verdict=verdict,
    )


def bare_power_iteration(graph: ContextGraph, params: ScoringParams) -> np.ndarray:
    """The irreducible PageRank: the same step and stopping rule, no checks or bookkeeping."""
    matrix, n = graph.transition, graph.transition.shape[0]
    dangling = np.flatnonzero(graph.dangling)
    d = params.damping
    x = np.full(n, 1.0 / n)
    for _ in range(params.max_iter):
        x_next = d * (matrix @ x) + (d * x[dangling].sum() + 1.0 - d) / n
        done = np.abs(x_next - x).sum() < params.tol
        x = x_next
        if done:
            break
    return x


def best_time(function, repeat: int) -> tuple[float, object]:
    """Best wall time of *repeat* calls (the least disturbed by the machine), and a result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def batch_size(function) -> int:
    """How many calls of *function* take at least MIN_BATCH_SECONDS (like timeit's autorange)."""
    loops = 1
    while batch_time(function, loops) * loops < MIN_BATCH_SECONDS:
        loops *= 2
    return loops


def batch_time(function, loops: int) -> float:
    """Mean wall time of one call over a batch of *loops* calls."""
    start = time.perf_counter()
    for _ in range(loops):
        function()
    return (time.perf_counter() - start) / loops


def run_size(n_values: int, n_judgments: int, *, repeat: int) -> dict[str, object]:
    params = ScoringParams()
    start = time.perf_counter()
    judgments = synthetic_deliberation(n_values, n_judgments)
    generation = time.perf_counter() - start

    total_time, result = best_time(lambda: score(judgments, params), repeat)

    # The same pipeline stage by stage, to see where the time goes.
    edges_time, edges = best_time(lambda: edge_table(judgments, params), repeat)
    graphs_time, graphs = best_time(lambda: build_context_graphs(edges), repeat)

    def all_pageranks() -> list[np.ndarray]:
        return [
            pagerank(g, damping=params.damping, tol=params.tol, max_iter=params.max_iter)[0]
            for g in graphs
        ]

    def all_bare() -> list[np.ndarray]:
        return [bare_power_iteration(g, params) for g in graphs]

    # Both are short, so time batches of calls (at least MIN_BATCH_SECONDS each) and
    # interleave them, so that both see the same machine conditions; keep the best batch.
    scores, bare_scores = all_pageranks(), all_bare()
    loops = batch_size(all_bare)
    pagerank_time = bare_time = float("inf")
    for _ in range(max(repeat, 5)):
        pagerank_time = min(pagerank_time, batch_time(all_pageranks, loops))
        bare_time = min(bare_time, batch_time(all_bare, loops))

    def all_labels() -> None:
        for graph, s in zip(graphs, scores, strict=True):
            pick_winners(graph.values, s, tie_tolerance=params.tie_tolerance)
            support_label(s, params)
            dict(zip(graph.values.tolist(), s.tolist(), strict=True))

    labels_time, _ = best_time(all_labels, repeat)

    def all_bradley_terry() -> None:
        for graph in graphs:
            fit_bradley_terry(
                graph.context_id, graph.values, edges.for_context(graph.context_id), params
            )

    bt_time, _ = best_time(all_bradley_terry, repeat)

    deviation = max(
        float(np.abs(s - b / b.sum()).max()) for s, b in zip(scores, bare_scores, strict=True)
    )
    sum_error = max(abs(float(c.score_array.sum()) - 1.0) for c in result.contexts.values())

    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    score(judgments, params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    n_nodes = sum(len(c.values) for c in result.contexts.values())
    return {
        "values": n_values,
        "judgments": n_judgments,
        "contexts": len(result.contexts),
        "context_nodes": n_nodes,
        "edge_rows": len(result.edges),
        "kept_edges": result.edges.n_kept,
        "kept_share": round(result.edges.n_kept / max(1, len(result.edges)), 4),
        "iterations_max": max(c.iterations for c in result.contexts.values()),
        "generation_s": round(generation, 4),
        "score_total_s": round(total_time, 4),
        "edge_table_s": round(edges_time, 4),
        "build_graphs_s": round(graphs_time, 4),
        "pagerank_s": round(pagerank_time, 4),
        "winners_labels_s": round(labels_time, 4),
        "bradley_terry_s": round(bt_time, 4),
        "bare_power_iteration_s": round(bare_time, 4),
        "pagerank_over_bare": round(pagerank_time / bare_time, 3),
        "total_over_bare": round(total_time / bare_time, 3),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "ru_maxrss_mb_after": round(maxrss_after / 1024, 1),
        "ru_maxrss_delta_mb": round((maxrss_after - maxrss_before) / 1024, 1),
        "max_abs_diff_vs_bare": deviation,
        "max_sum_error": sum_error,
        "repeat": repeat,
    }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        values, judgments = item.split(":")
        sizes.append((int(values), int(judgments)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(LADDER),
        help="comma-separated values:judgments pairs (default: 1000:10000,10000:100000,"
        "100000:1000000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    args = parser.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, cpus {os.cpu_count()}")
    print(f"{N_CONTEXTS} contexts, about {JUDGMENTS_PER_HYPOTHESIS} judgments per hypothesis")
    figures = []
    for n_values, n_judgments in args.sizes:
        f = run_size(n_values, n_judgments, repeat=args.repeat)
        figures.append(f)
        print(
            f"values={n_values:>7} judgments={n_judgments:>8}: score() {f['score_total_s']:.3f}s "
            f"(edge table {f['edge_table_s']:.3f}s, graphs {f['build_graphs_s']:.3f}s, "
            f"pagerank {f['pagerank_s']:.3f}s, winners+labels {f['winners_labels_s']:.3f}s, "
            f"Bradley-Terry {f['bradley_terry_s']:.3f}s)"
        )
        print(
            f"    bare power iteration {f['bare_power_iteration_s']:.3f}s; "
            f"pagerank/bare {f['pagerank_over_bare']:.2f}x, "
            f"total/bare {f['total_over_bare']:.2f}x; "
            f"kept edges {f['kept_edges']} of {f['edge_rows']} rows ({f['kept_share']:.0%}); "
            f"nodes {f['context_nodes']}, max iterations {f['iterations_max']}"
        )
        print(
            f"    peak memory: tracemalloc {f['tracemalloc_peak_mb']} MiB during score(); "
            f"ru_maxrss {f['ru_maxrss_mb_after']} MiB (delta {f['ru_maxrss_delta_mb']} MiB); "
            f"|score - bare| <= {f['max_abs_diff_vs_bare']:.1e}, "
            f"|sum - 1| <= {f['max_sum_error']:.1e}"
        )
    largest = max(figures, key=lambda f: f["judgments"])
    meets = (
        largest["score_total_s"] < TARGET_SECONDS
        and largest["pagerank_over_bare"] < TARGET_PAGERANK_OVER_BARE
    )
    print(
        f"target (largest size under {TARGET_SECONDS:.0f}s, pagerank within "
        f"{TARGET_PAGERANK_OVER_BARE}x of bare): {'met' if meets else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "benchmark": "scoring",
                "memory_measure": "tracemalloc peak during score(); process ru_maxrss (MiB)",
                "cpus": os.cpu_count(),
                "target_seconds": TARGET_SECONDS,
                "target_pagerank_over_bare": TARGET_PAGERANK_OVER_BARE,
                "meets_target": meets,
                "sizes": figures,
            }
        )
    )


if __name__ == "__main__":
    main()

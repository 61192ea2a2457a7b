"""Benchmark of the graph explorer's drawing (graph/explorer.py, graph/layout.py) at scale.

Run from the project root::

    .venv/bin/python bench/explorer.py                         # 3,000 values, ~6,000 edges
    .venv/bin/python bench/explorer.py --values 6000 --hypotheses 14000

A synthetic deliberation is scored by the real method (`algorithms.score`), so the results
JSON has the shape a stored run has: values carry a latent "wisdom" and a position on a line;
each value belongs to one or two of 6 contexts; hypotheses pair values that are close on the
line within a context, mostly oriented from the less to the more wise value, and each gets 5
judgments whose verdicts follow the wisdom difference. The explorer then draws the whole run
(every context, the page's default view) exactly as the view does, `explorer.graph_view` then
`GraphView.svg`, minus the one database query that reads the titles (titles are made up here).

Figures: the layout computed cold (layered positions, what the cache stores), the SVG built
from it, the whole drawing cold and with the layout read from the cache (Django's local-memory
cache here; Redis adds a round trip and unpickling), the SVG size raw and gzipped (what the
browser downloads with compression), and the counts of nodes and edges drawn. The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "")
os.environ.setdefault("REDIS_URL", "")

import django

django.setup()

from django.core.cache import cache  # noqa: E402

from graph import algorithms, explorer, layout  # noqa: E402
from graph.models import ScoringRun  # noqa: E402

N_CONTEXTS = 6
JUDGMENTS_PER_HYPOTHESIS = 5
TARGET_SECONDS = 1.0  # a cached page must draw well under a second


def synthetic_results(n_values: int, n_hypotheses: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    wisdom = rng.normal(size=n_values)
    place = rng.random(n_values)
    contexts = [[] for _ in range(N_CONTEXTS)]
    for v in range(n_values):
        for c in rng.choice(N_CONTEXTS, size=rng.integers(1, 3), replace=False):
            contexts[c].append(v)
    rows = []
    per_context = n_hypotheses // N_CONTEXTS
    for c, members in enumerate(contexts):
        members = sorted(members, key=lambda v: place[v])
        for _ in range(per_context):
            i = int(rng.integers(0, len(members) - 1))
            j = min(len(members) - 1, i + int(rng.integers(1, 6)))
            a, b = members[i], members[j]
            if (wisdom[a] > wisdom[b]) != (rng.random() < 0.15):
                a, b = b, a  # usually from the less to the more wise
            p_up = 1 / (1 + np.exp(-2 * (wisdom[b] - wisdom[a])))
            for k in range(JUDGMENTS_PER_HYPOTHESIS):
                verdict = 0 if rng.random() < p_up else int(rng.integers(1, 3))
                rows.append((len(rows) * 7 + k, c + 1, a + 1, b + 1, verdict))
    judgments = algorithms.JudgmentArrays.from_judgments(rows)
    values_by_context = {c + 1: [v + 1 for v in members] for c, members in enumerate(contexts)}
    result = algorithms.score(
        judgments, algorithms.ScoringParams(), values_by_context=values_by_context
    )
    return json.loads(json.dumps(result.to_dict()))


CHROMIUM = Path("/usr/bin/chromium")
BROWSER_STEPS = 20
STEP_SCRIPT = """async ([steps, mode]) => {
  const svg = document.querySelector("svg.moral-graph");
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const [x, y, w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  svg.style.transformOrigin = "0 0";
  const times = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    const f = i % 2 ? 1.25 : 0.8;  // zoom in and out, and pan a little
    if (mode === "viewBox") {
      svg.setAttribute("viewBox", [x + i * 10, y + i * 5, w * f, h * f].join(" "));
    } else {
      svg.style.transform = `translate(${i * 3}px, ${i * 2}px) scale(${1 / f})`;
    }
    await frame();
    await frame();
    times.push(performance.now() - start);
  }
  svg.style.transform = "";
  return times.sort((a, b) => a - b);
}"""


def in_browser(svg: str) -> dict:
    """Load the SVG with the app's stylesheets in headless Chromium; time the first paint and
    each pan or zoom step (what the explorer's script does on every wheel event or drag)."""
    from playwright.sync_api import sync_playwright

    static = Path(__file__).resolve().parent.parent / "static" / "css"
    css = (static / "app.css").read_text() + (static / "explorer.css").read_text()
    page_html = f"<style>{css}</style><div class='graph-view'>{svg}</div>"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.set_content(page_html)
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r()))")
        load_ms = (time.perf_counter() - start) * 1000
        redraw = page.evaluate(STEP_SCRIPT, [BROWSER_STEPS, "viewBox"])
        moved = page.evaluate(STEP_SCRIPT, [BROWSER_STEPS, "transform"])
        browser.close()
    return {
        "browser_load_ms": round(load_ms, 1),
        "browser_preview_ms_median": round(moved[len(moved) // 2], 1),
        "browser_preview_ms_max": round(moved[-1], 1),
        "browser_redraw_ms_median": round(redraw[len(redraw) // 2], 1),
        "browser_redraw_ms_max": round(redraw[-1], 1),
    }


def timed(function, repeat: int):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=3000)
    parser.add_argument("--hypotheses", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    parser.add_argument(
        "--no-browser", action="store_true", help="skip the measurement in headless Chromium"
    )
    args = parser.parse_args()

    results = synthetic_results(args.values, args.hypotheses, args.seed)
    run = ScoringRun(pk=1, results=results)
    context_ids = [c["context_id"] for c in results["contexts"]]
    titles = {v: f"Synthetic value number {v}" for v in range(1, args.values + 1)}
    href = "/research/d/bench/explorer/value/{id}/"

    def view(cache_key: str = "") -> explorer.GraphView:
        return explorer.graph_view(
            run=run, context_ids=context_ids, titles=titles, cache_key=cache_key
        )

    drawn = view()
    layout_s, _ = timed(
        lambda: layout.layered_positions(
            [n.id for n in drawn.nodes],
            [(e.source, e.target) for e in drawn.edges],
            isolated_order=[n.id for n in sorted(drawn.nodes, key=lambda n: -n.score)],
        ),
        args.repeat,
    )
    svg_s, svg = timed(lambda: drawn.svg(href=href, selected=1), args.repeat)
    cold_s, _ = timed(lambda: view().svg(href=href), args.repeat)
    cache.clear()
    view("bench-explorer")  # fills the cache
    cached_s, _ = timed(lambda: view("bench-explorer").svg(href=href), args.repeat)
    raw = svg.encode()
    rows = max(int(y) for _, y in drawn.positions.values()) + 1
    figures = {
        "values": len(drawn.nodes),
        "edges_drawn": len(drawn.edges),
        "edge_rows_in_run": len(results["edges"].get("context", [])),
        "contexts": len(context_ids),
        "layout_rows": rows,
        "layout_s": round(layout_s, 4),
        "svg_build_s": round(svg_s, 4),
        "draw_cold_s": round(cold_s, 4),
        "draw_cached_s": round(cached_s, 4),
        "svg_bytes": len(raw),
        "svg_gzip_bytes": len(gzip.compress(raw, 6)),
    }
    if not args.no_browser and CHROMIUM.exists():
        figures.update(in_browser(svg))
    meets = (
        figures["draw_cached_s"] < TARGET_SECONDS and figures["draw_cold_s"] < 2 * TARGET_SECONDS
    )
    print(f"python {platform.python_version()}, cpus {os.cpu_count()}, best of {args.repeat}")
    print(
        f"{figures['values']} values, {figures['edges_drawn']} edges drawn "
        f"({figures['edge_rows_in_run']} edge rows in the run, {figures['contexts']} contexts), "
        f"{rows} rows in the layout"
    )
    print(
        f"layout {layout_s * 1000:.0f} ms, SVG {svg_s * 1000:.0f} ms; whole drawing "
        f"cold {cold_s * 1000:.0f} ms, with the cached layout {cached_s * 1000:.0f} ms"
    )
    print(
        f"SVG {len(raw) / 1024:.0f} KiB, gzipped {figures['svg_gzip_bytes'] / 1024:.0f} KiB; "
        f"target (cached under {TARGET_SECONDS:.0f}s, cold under {2 * TARGET_SECONDS:.0f}s): "
        f"{'met' if meets else 'NOT met'}"
    )
    if "browser_load_ms" in figures:
        print(
            f"in Chromium (software rendering): page with the SVG painted in "
            f"{figures['browser_load_ms']:.0f} ms; a pan or zoom step while the pointer moves "
            f"(CSS transform) {figures['browser_preview_ms_median']:.0f} ms median, "
            f"{figures['browser_preview_ms_max']:.0f} ms max; the redraw when the gesture "
            f"settles (new viewBox) {figures['browser_redraw_ms_median']:.0f} ms median, "
            f"{figures['browser_redraw_ms_max']:.0f} ms max ({BROWSER_STEPS} steps each)"
        )
    print(json.dumps({"benchmark": "explorer", "meets_target": meets, **figures}))


if __name__ == "__main__":
    main()

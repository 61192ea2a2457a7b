"""Drawing the moral graph: where each value goes, and the SVG that shows it.

Pure: NetworkX in, coordinates and SVG text out; no Django, no database, no clock, no
randomness. The same graph always gives the same picture, so a researcher can screenshot it
and a colleague see the same thing.

The layout says what the graph means: **wiser is higher**. An upgrade A -> B means people
judged B wiser than A, so B is drawn above A. Concretely (`layered_positions`):

1. Values that upgrade into each other around a cycle (A -> B -> C -> A) have no "higher"
   among them: each strongly connected component is collapsed into one block (the graph's
   condensation, which has no cycles).
2. Each block gets a *level*: the length of the longest chain of upgrades leading into it.
   Values nobody upgrades from sit at level 0 (the bottom); a value reached through a long
   chain of upgrades sits high.
3. Within a level, values are ordered by the mean horizontal position of the values they were
   upgraded from (the barycentre heuristic), so edges run mostly upwards rather than across.
   Ties go by id, so the order never depends on input order.
4. A level wider than `row_size` wraps onto several rows, and values with no upgrade at all
   (isolated) form a grid under the graph, highest score first: thousands of values stay
   readable instead of one endless row.

The cost is O(values + edges) plus a sort per level: a few thousand values lay out in tens of
milliseconds (bench/explorer.py measures it), and the result is cached per scoring run and
filter by the caller.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape

import networkx as nx

__all__ = [
    "SUPPORT_COLOURS",
    "DrawEdge",
    "DrawNode",
    "layered_positions",
    "svg",
]

#: Grid spacing between neighbouring values, and between rows, in SVG user units.
SPACING_X = 60.0
SPACING_Y = 90.0
#: Radius of the least and of the best scored value.
RADIUS_MIN = 5.0
RADIUS_MAX = 22.0
#: Stroke width of an edge with likelihood 0 and of one with likelihood 1.
WIDTH_MIN = 0.6
WIDTH_MAX = 6.0

#: Fill of a winning value by the support label of its context; other values are grey.
SUPPORT_COLOURS = {
    "broad": "#2f7a4b",
    "some": "#d9a441",
    "contested": "#b5523b",
}
OTHER_COLOUR = "#9aa5b4"
SUPPORT_RANK = {"broad": 3, "some": 2, "contested": 1}


def layered_positions(
    nodes: Iterable[int],
    edges: Iterable[tuple[int, int]],
    *,
    row_size: int | None = None,
    isolated_order: Sequence[int] = (),
) -> dict[int, tuple[float, float]]:
    """Grid coordinates (column, row) of every node; row 0 is the top, columns are centred on
    0. An edge (a, b) reads "b is wiser than a" and puts b above a (see the module docstring).

    *row_size* is the widest a row may be; by default about sqrt(2.7 n), which makes a graph
    whose levels are wide about twice as wide as high on screen (the rows are 1.5 times as far
    apart as the columns), the shape of a browser window. *isolated_order* lists nodes without
    edges in the order they should fill the bottom grid (e.g. by score); those not listed
    follow by id.
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(set(nodes)))
    graph.add_edges_from((a, b) for a, b in edges if a != b)
    if row_size is None:
        row_size = max(12, round(math.sqrt(2.7 * graph.number_of_nodes())))
    if row_size < 1:
        raise ValueError("row_size must be at least 1")
    isolated = [n for n in graph.nodes if graph.degree(n) == 0]
    connected = graph.subgraph(n for n in graph.nodes if graph.degree(n) > 0)

    by_level: dict[int, list[int]] = {}
    for n, level in _levels(connected).items():
        by_level.setdefault(level, []).append(n)
    rows: list[list[int]] = []  # bottom-up until the end
    x_of: dict[int, float] = {}
    for level in sorted(by_level):
        members = by_level[level]
        members.sort(key=lambda n: (_barycentre(connected, n, x_of), n))
        for start in range(0, len(members), row_size):
            row = members[start : start + row_size]
            for index, n in enumerate(row):
                x_of[n] = index - (len(row) - 1) / 2
            rows.append(row)
    rows.reverse()  # the wisest level on top

    ranked = {n: i for i, n in enumerate(isolated_order)}
    isolated.sort(key=lambda n: (ranked.get(n, len(ranked)), n))
    if rows and isolated:
        rows.append([])  # a blank row keeps the unconnected values apart from the graph
    for start in range(0, len(isolated), row_size):
        rows.append(isolated[start : start + row_size])

    positions: dict[int, tuple[float, float]] = {}
    for y, row in enumerate(rows):
        for index, n in enumerate(row):
            positions[n] = (index - (len(row) - 1) / 2, float(y))
    return positions


def _levels(graph: nx.DiGraph) -> dict[int, int]:
    """Longest chain of upgrades into each node, counted on the condensation (cycles become
    one block, whose members share a level)."""
    if graph.number_of_nodes() == 0:
        return {}
    condensed = nx.condensation(graph)
    block_level: dict[int, int] = {}
    # lexicographical_topological_sort: deterministic whatever the insertion order.
    for block in nx.lexicographical_topological_sort(condensed):
        block_level[block] = max(
            (block_level[p] + 1 for p in condensed.predecessors(block)), default=0
        )
    mapping = condensed.graph["mapping"]
    return {n: block_level[mapping[n]] for n in graph.nodes}


def _barycentre(graph: nx.DiGraph, node: int, x_of: Mapping[int, float]) -> float:
    """Mean column of the already placed values the node was upgraded from (0 if none)."""
    placed = [x_of[p] for p in graph.predecessors(node) if p in x_of]
    return sum(placed) / len(placed) if placed else 0.0


# --- Drawing ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DrawNode:
    """A value as drawn: its size follows its score (relative to the best in view), its fill
    the support of the context it wins (grey when it wins none)."""

    id: int
    title: str
    score: float
    support: str = ""  # "broad" | "some" | "contested" when it is a winner, else ""


@dataclasses.dataclass(frozen=True, slots=True)
class DrawEdge:
    """An upgrade source -> target (target judged wiser); width follows its likelihood."""

    source: int
    target: int
    likelihood: float
    kept: bool = True


def radius(score: float, best: float) -> float:
    """Area, not radius, proportional to the score: sqrt keeps small values visible."""
    if best <= 0 or score <= 0:
        return RADIUS_MIN
    return RADIUS_MIN + (RADIUS_MAX - RADIUS_MIN) * math.sqrt(min(score / best, 1.0))


def stroke_width(likelihood: float) -> float:
    return WIDTH_MIN + (WIDTH_MAX - WIDTH_MIN) * min(max(likelihood, 0.0), 1.0)


def _num(x: float) -> str:
    """Short, exact enough coordinates: a few thousand nodes make the SVG size matter."""
    return f"{x:.1f}".removesuffix(".0")


def svg(
    nodes: Sequence[DrawNode],
    edges: Sequence[DrawEdge],
    positions: Mapping[int, tuple[float, float]],
    *,
    href: str = "",
    selected: int | None = None,
    mine: int | None = None,
    labels: int = 40,
    title: str = "",
) -> str:
    """The graph as an SVG document fragment (an inline ``<svg>`` element).

    *href*, if given, makes each value a link: ``{id}`` in it is replaced by the value's id
    (the page works without JavaScript; the explorer's script turns the click into an htmx
    request). *selected* and *mine* outline one value each. The *labels* best scored values
    (and every winner) carry a visible title; every value has a tooltip. Nodes whose position
    is unknown are skipped, and so are edges touching them.
    """
    drawn = [n for n in nodes if n.id in positions]
    if not drawn:
        return ""
    best = max((n.score for n in drawn), default=0.0)
    xs = [positions[n.id][0] * SPACING_X for n in drawn]
    ys = [positions[n.id][1] * SPACING_Y for n in drawn]
    margin = RADIUS_MAX + 60
    left, top = min(xs) - margin, min(ys) - margin
    width, height = max(xs) - min(xs) + 2 * margin, max(ys) - min(ys) + 2 * margin
    radii = {n.id: radius(n.score, best) for n in drawn}
    labelled = {n.id for n in sorted(drawn, key=lambda n: (-n.score, n.id))[:labels]}
    labelled |= {n.id for n in drawn if n.support}

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="moral-graph" role="img"'
        f' viewBox="{_num(left)} {_num(top)} {_num(width)} {_num(height)}"'
        f' data-home="{_num(left)} {_num(top)} {_num(width)} {_num(height)}"'
        f' preserveAspectRatio="xMidYMid meet">',
    ]
    if title:
        out.append(f"<title>{escape(title)}</title>")
    out.append(
        # In user units, so that a wide edge does not grow a huge arrowhead.
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9"'
        ' markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
        '<path d="M0 0L10 5L0 10z" fill="#5b6577"/></marker></defs>'
    )
    out.append('<g class="edges" fill="none">')
    for edge in edges:
        if edge.source not in radii or edge.target not in radii:
            continue
        out.append(_edge(edge, positions, radii))
    out.append('</g><g class="nodes">')
    for node, x, y in zip(drawn, xs, ys, strict=True):
        out.append(
            _node(
                node,
                x,
                y,
                radii[node.id],
                href=href,
                label=node.id in labelled,
                selected=node.id == selected,
                mine=node.id == mine,
            )
        )
    out.append("</g></svg>")
    return "".join(out)


def _edge(
    edge: DrawEdge, positions: Mapping[int, tuple[float, float]], radii: Mapping[int, float]
) -> str:
    (x1, y1), (x2, y2) = positions[edge.source], positions[edge.target]
    x1, y1, x2, y2 = x1 * SPACING_X, y1 * SPACING_Y, x2 * SPACING_X, y2 * SPACING_Y
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    # Start and end on the circles' rims, so the arrowhead is visible.
    r1, r2 = radii[edge.source], radii[edge.target] + 1
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    dashed = "" if edge.kept else ' stroke-dasharray="4 4" class="dropped"'
    return (
        f'<line x1="{_num(x1 + ux * r1)}" y1="{_num(y1 + uy * r1)}"'
        f' x2="{_num(x2 - ux * r2)}" y2="{_num(y2 - uy * r2)}"'
        f' stroke-width="{stroke_width(edge.likelihood):.1f}"'
        f' data-from="{edge.source}" data-to="{edge.target}"{dashed}/>'
    )


def _node(
    node: DrawNode,
    x: float,
    y: float,
    r: float,
    *,
    href: str,
    label: bool,
    selected: bool,
    mine: bool,
) -> str:
    fill = SUPPORT_COLOURS.get(node.support, OTHER_COLOUR)
    classes = "node" + (" selected" if selected else "") + (" mine" if mine else "")
    tip = escape(f"{node.title} ({node.score:.3f})")
    body = (
        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(r)}" fill="{fill}"/><title>{tip}</title>'
    )
    if label:
        text = escape(node.title if len(node.title) <= 32 else node.title[:31] + "…")
        body += f'<text x="{_num(x)}" y="{_num(y + r + 13)}">{text}</text>'
    attributes = f'class="{classes}" data-value="{node.id}"'
    if href:
        link = escape(href.replace("{id}", str(node.id)))
        return f'<a href="{link}" {attributes}>{body}</a>'
    return f"<g {attributes}>{body}</g>"

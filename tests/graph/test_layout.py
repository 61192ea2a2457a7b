"""The drawing of the moral graph (graph/layout.py): pure functions, no database. What a reader
of the picture relies on: wiser is higher, the same graph always looks the same, thousands of
values wrap into rows, and nothing a participant wrote can break out of the SVG."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from graph import layout
from graph.layout import DrawEdge, DrawNode, layered_positions, svg

edge_lists = st.lists(
    st.tuples(st.integers(1, 30), st.integers(1, 30)).filter(lambda e: e[0] != e[1]),
    max_size=80,
)


def test_an_upgrade_puts_the_wiser_value_above():
    positions = layered_positions([1, 2, 3, 4], [(1, 2), (2, 3), (1, 4)])
    # Row 0 is the top of the picture.
    assert positions[3][1] < positions[2][1] < positions[1][1]
    assert positions[4][1] < positions[1][1]


@settings(max_examples=60, deadline=None)
@given(edge_lists)
def test_every_upgrade_outside_a_cycle_points_upwards(edges):
    import networkx as nx

    positions = layered_positions(range(1, 31), edges)
    graph = nx.DiGraph(edges)
    component = {n: i for i, c in enumerate(nx.strongly_connected_components(graph)) for n in c}
    for a, b in edges:
        if component[a] != component[b]:
            assert positions[b][1] < positions[a][1], (a, b)


@settings(max_examples=40, deadline=None)
@given(edge_lists, st.randoms(use_true_random=False))
def test_the_picture_does_not_depend_on_the_order_of_the_input(edges, rng):
    nodes = list(range(1, 31))
    shuffled_nodes, shuffled_edges = nodes[:], edges[:]
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_edges)
    assert layered_positions(nodes, edges) == layered_positions(shuffled_nodes, shuffled_edges)


def test_values_upgrading_into_each_other_in_a_cycle_share_a_row():
    positions = layered_positions([1, 2, 3, 4], [(1, 2), (2, 3), (3, 1), (3, 4)])
    assert positions[1][1] == positions[2][1] == positions[3][1]
    assert positions[4][1] < positions[1][1]


def test_values_without_upgrades_fill_a_grid_under_the_graph_best_first():
    positions = layered_positions(range(1, 8), [(1, 2)], row_size=3, isolated_order=[7, 6, 5, 4, 3])
    graph_bottom = max(positions[1][1], positions[2][1])
    isolated = [7, 6, 5, 4, 3]
    assert all(positions[n][1] >= graph_bottom + 2 for n in isolated)  # a blank row between
    rows = sorted({positions[n][1] for n in isolated})
    assert [sorted(n for n in isolated if positions[n][1] == r) for r in rows] == [
        [5, 6, 7],
        [3, 4],
    ]
    assert positions[7][0] < positions[6][0] < positions[5][0]  # in the order given


def test_thousands_of_values_wrap_into_rows_no_wider_than_asked():
    rng = random.Random(3)
    nodes = range(3000)
    edges = [(a, a + rng.randint(1, 40)) for a in range(0, 2900, 2)]
    positions = layered_positions(nodes, edges, row_size=50)
    per_row: dict[float, int] = {}
    for _x, y in positions.values():
        per_row[y] = per_row.get(y, 0) + 1
    assert max(per_row.values()) <= 50
    assert len(positions) == 3000
    # The default row size gives a picture wider than high, like a screen.
    default = layered_positions(nodes, edges)
    width = max(x for x, _ in default.values()) - min(x for x, _ in default.values())
    height = max(y for _, y in default.values())
    assert width * layout.SPACING_X > height * layout.SPACING_Y


def nodes_and_positions():
    nodes = [
        DrawNode(1, "Care <script>alert(1)</script>", 0.5, "broad"),
        DrawNode(2, 'Plain "facts" & figures', 0.1),
        DrawNode(3, "Not placed", 0.4),
    ]
    return nodes, {1: (0.0, 0.0), 2: (0.0, 1.0)}


def test_the_svg_escapes_what_participants_wrote_and_links_each_value():
    nodes, positions = nodes_and_positions()
    out = svg(nodes, [DrawEdge(2, 1, 0.8)], positions, href="/v/{id}/?q=a&c=1", selected=2)
    assert "<script>" not in out
    assert "Care &lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "Plain &quot;facts&quot; &amp; figures" in out
    assert '<a href="/v/1/?q=a&amp;c=1" class="node" data-value="1">' in out
    assert 'class="node selected" data-value="2"' in out
    assert 'data-value="3"' not in out  # no position: not drawn
    assert f'fill="{layout.SUPPORT_COLOURS["broad"]}"' in out
    assert 'data-from="2" data-to="1"' in out


def test_size_follows_the_score_and_width_the_likelihood():
    assert layout.radius(0.5, 0.5) == layout.RADIUS_MAX
    assert layout.radius(0.0, 0.5) == layout.RADIUS_MIN
    assert layout.RADIUS_MIN < layout.radius(0.1, 0.5) < layout.radius(0.3, 0.5)
    assert layout.stroke_width(1.0) > layout.stroke_width(0.4) > layout.stroke_width(0.0)
    nodes, positions = nodes_and_positions()
    out = svg(nodes, [DrawEdge(2, 1, 0.3), DrawEdge(2, 1, 0.9, kept=False)], positions)
    radii = {
        int(v): float(r)
        for v, r in re.findall(r'data-value="(\d+)"><circle[^>]* r="([\d.]+)"', out)
    }
    assert radii[1] > radii[2]
    assert out.count('class="dropped"') == 1
    assert "<a " not in out  # without href the values are not links


def test_nothing_to_draw_gives_no_svg():
    assert svg([DrawNode(1, "x", 1.0)], [], {}) == ""

"""The graph explorer, as a researcher ("Rhea") notices it: the latest run drawn as a graph,
filtered by question and context, and the detail of a value; and who may not see it."""

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from elicit.models import StaffAssignment, ValuesCard
from graph import explorer, layout, pipeline, results
from graph.models import ScoringRun
from tests.factories import DeliberationFactory, UserFactory
from tests.graph.scored import scored_deliberation

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def researcher_of(*deliberations, username="rhea") -> Client:
    rhea = UserFactory(username=username)
    for deliberation in deliberations:
        StaffAssignment.objects.create(
            user=rhea, deliberation=deliberation, role=StaffAssignment.Role.RESEARCHER
        )
    client = Client()
    client.force_login(rhea)
    return client


def url(scored, **query) -> str:
    base = reverse("research:explorer", args=[scored.deliberation.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def value_url(scored, key: str, query: str = "") -> str:
    base = reverse(
        "research:explorer_value", args=[scored.deliberation.slug, scored.values[key].pk]
    )
    return base + (f"?{query}" if query else "")


def drawn_values(html: str) -> set[int]:
    return {
        int(pk) for pk in re.findall(r'<a href="[^"]*" class="node[^"]*" data-value="(\d+)"', html)
    }


def drawn_edges(html: str) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in re.findall(r'data-from="(\d+)" data-to="(\d+)"', html)}


@pytest.fixture
def scored():
    return scored_deliberation()


def test_it_draws_every_scored_value_and_the_upgrades_kept_with_the_wiser_value_higher(scored):
    html = researcher_of(scored.deliberation).get(url(scored)).content.decode()
    v = {k: value.pk for k, value in scored.values.items()}
    assert drawn_values(html) == set(v.values())
    assert drawn_edges(html) == {
        (v["facts"], v["care"]),
        (v["care"], v["autonomy"]),
        (v["history"], v["facts"]),
    }
    centres = {
        int(pk): float(cy)
        for pk, cy in re.findall(r'data-value="(\d+)"><circle cx="[-\d.]+" cy="([-\d.]+)"', html)
    }
    # SVG y grows downwards: the wiser value has the smaller y.
    assert centres[v["autonomy"]] < centres[v["care"]] < centres[v["facts"]]


def test_the_question_filter_shows_only_the_contexts_of_that_question(scored):
    client = researcher_of(scored.deliberation)
    html = client.get(url(scored, question="abortion")).content.decode()
    v = {k: value.pk for k, value in scored.values.items()}
    # "Honest history" was scored in the shared context, so it is there, but the upgrade judged
    # in the other question's own context is not.
    assert (v["history"], v["facts"]) not in drawn_edges(html)
    assert (v["facts"], v["care"]) in drawn_edges(html)
    assert scored.elsewhere.text not in html  # not even offered as a context filter
    assert scored.distress.text in html


def test_the_context_filter_shows_that_context_alone(scored):
    client = researcher_of(scored.deliberation)
    html = client.get(url(scored, question="abortion", context=scored.shared.pk)).content.decode()
    assert drawn_edges(html) == set()  # nothing was judged in the shared context
    # ... so its values only tie: none is coloured as a winner.
    graph = html.split('class="moral-graph"', 1)[1]
    assert set(re.findall(r'<circle [^>]*fill="(#\w+)"', graph)) == {layout.OTHER_COLOUR}
    html = client.get(url(scored, question="abortion", context=scored.distress.pk)).content
    html = html.decode()
    assert drawn_values(html) == {scored.values[k].pk for k in ("facts", "care", "autonomy")}
    support = results.context_scores(scored.run.results)[scored.distress.pk].support
    autonomy = scored.values["autonomy"].pk
    assert f'data-value="{autonomy}"><circle' in html
    assert re.search(
        rf'data-value="{autonomy}"><circle [^>]*fill="{layout.SUPPORT_COLOURS[support]}"', html
    )


def test_a_context_of_another_question_or_nonsense_is_ignored_and_said_so(scored):
    client = researcher_of(scored.deliberation)
    response = client.get(url(scored, question="abortion", context=scored.elsewhere.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "were ignored: context" in html
    assert (scored.values["history"].pk, scored.values["facts"].pk) not in drawn_edges(html)
    response = client.get(url(scored, question="nope", context="x<script>"))
    assert response.status_code == 200
    assert "were ignored: question, context" in response.content.decode()


def test_dropped_edges_appear_dashed_only_on_request(scored):
    hypothesis = scored.stories["care>autonomy"]
    # A new run in which this upgrade has too little support to be kept.
    run = pipeline.run_scoring(
        deliberation_id=scored.deliberation.pk, name="strict", params={"min_upgrades": 4}
    )
    assert run.status == ScoringRun.Status.DONE
    client = researcher_of(scored.deliberation)
    pair = (hypothesis.from_value_id, hypothesis.to_value_id)
    assert pair not in drawn_edges(client.get(url(scored)).content.decode())
    html = client.get(url(scored, dropped=1)).content.decode()
    assert pair in drawn_edges(html)
    assert 'stroke-dasharray="4 4" class="dropped"' in html


def test_a_click_on_a_value_shows_its_card_raw_cards_and_upgrades_with_votes(scored):
    care = scored.values["care"]
    ValuesCard.objects.create(
        deliberation=scored.deliberation,
        question=scored.question,
        title="Being kind whatever she chooses",
        description="A second card that was merged into it.",
        policies=["MOMENTS of doubt"],
        canonical=care,
    )
    client = researcher_of(scored.deliberation)
    response = client.get(value_url(scored, "care"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<aside id="explorer-detail"')  # the partial only
    assert "Care without judgment" in html
    assert "Being kind whatever she chooses" in html  # a raw card merged into it
    assert "Raw cards merged into it (2)" in html
    assert "Upgrade into this value (1)" in html
    assert "Upgrade out of this value (1)" in html
    assert "She once cared about plain facts" in html
    assert "Votes: 3 upgrade, 1 not an upgrade, 0 not sure." in html
    assert "Likelihood 0.75" in html


def test_without_javascript_the_value_link_opens_the_whole_page_with_its_detail(scored):
    response = researcher_of(scored.deliberation).get(
        value_url(scored, "care", "question=abortion")
    )
    html = response.content.decode()
    assert "<h1>Graph explorer</h1>" in html
    assert "Caring, she came to trust the person to decide." in html
    assert f'class="node selected" data-value="{scored.values["care"].pk}"' in html
    # Links of the drawn values keep the filter.
    assert "/?question=abortion" in html


def test_back_to_a_selection_htmx_has_no_snapshot_of_gets_the_whole_page(scored):
    """htmx restores a page of the history it kept no snapshot of (too big for its cache, or
    a new tab) by asking for it with HX-Request: a partial would replace the whole page."""
    restore = {**HTMX, "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    client = researcher_of(scored.deliberation)
    html = client.get(value_url(scored, "care", "question=abortion"), **restore).content.decode()
    assert "<h1>Graph explorer</h1>" in html
    assert "Caring, she came to trust the person to decide." in html
    assert f'class="node selected" data-value="{scored.values["care"].pk}"' in html
    html = client.get(url(scored, question="abortion"), **restore).content.decode()
    assert "<h1>Graph explorer</h1>" in html
    assert "Click a value to see its card" in html


def test_the_detail_keeps_to_the_question_in_view(scored):
    html = (
        researcher_of(scored.deliberation)
        .get(value_url(scored, "facts", "question=abortion"), **HTMX)
        .content.decode()
    )
    assert "A story about violence facts." not in html
    html = (
        researcher_of(scored.deliberation, username="rhea2")
        .get(value_url(scored, "facts"), **HTMX)
        .content.decode()
    )
    assert "A story about violence facts." in html


def test_without_a_finished_run_the_page_says_so():
    scored = scored_deliberation(run=False)
    html = researcher_of(scored.deliberation).get(url(scored)).content.decode()
    assert "The graph has not been scored yet" in html
    assert "<svg" not in html.split("<main", 1)[1].split("legend", 1)[0]


def test_a_researcher_of_another_deliberation_gets_404(scored):
    client = researcher_of(DeliberationFactory())
    assert client.get(url(scored)).status_code == 404
    assert client.get(value_url(scored, "care")).status_code == 404


def test_a_value_of_another_deliberation_is_404(scored):
    other = scored_deliberation()
    client = researcher_of(scored.deliberation)
    wrong = reverse(
        "research:explorer_value", args=[scored.deliberation.slug, other.values["care"].pk]
    )
    assert client.get(wrong).status_code == 404


def test_participants_and_anonymous_visitors_see_no_explorer(scored):
    anonymous = Client().get(url(scored))
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/") or "login" in anonymous["Location"]
    participant = UserFactory(username="ada")
    client = Client()
    client.force_login(participant)
    assert client.get(url(scored)).status_code == 404
    assert client.get(value_url(scored, "care")).status_code == 404


def test_the_layout_is_cached_per_run_and_filter(scored):
    filters = explorer.Filters()
    key = explorer.layout_key(scored.run, filters)
    assert cache.get(key) is None
    first = explorer.explorer_view(
        deliberation=scored.deliberation, run=scored.run, filters=filters
    )
    assert cache.get(key) == first.positions
    cache.set(key, {pk: (float(i), 9.0) for i, pk in enumerate(first.positions)})
    second = explorer.explorer_view(
        deliberation=scored.deliberation, run=scored.run, filters=filters
    )
    assert second.positions != first.positions  # read from the cache, not recomputed


def test_it_tolerates_a_run_whose_results_lack_keys(scored):
    ScoringRun.objects.filter(pk=scored.run.pk).update(
        results={
            "contexts": [{"context_id": scored.distress.pk, "values": [scored.values["care"].pk]}]
        }
    )
    response = researcher_of(scored.deliberation).get(url(scored))
    assert response.status_code == 200
    assert drawn_values(response.content.decode()) == {scored.values["care"].pk}


def test_the_links_of_the_values_point_to_them_whatever_the_slug():
    scored = scored_deliberation(slug="0")
    html = researcher_of(scored.deliberation).get(url(scored)).content.decode()
    care = scored.values["care"].pk
    assert f'<a href="/research/d/0/explorer/value/{care}/" class="node' in html


def test_the_detail_shows_both_estimators_and_the_primary_one_names_the_winners(scored):
    html = researcher_of(scored.deliberation).get(value_url(scored, "care"), **HTMX).content
    entry = next(c for c in scored.run.results["contexts"] if c["context_id"] == scored.distress.pk)
    care = entry["values"].index(scored.values["care"].pk)
    strength = entry["bradley_terry"]["strength"][care]
    assert f"{strength:.2f} ± " in html.decode()

    facts = scored.values["facts"].pk
    swapped = {
        "primary": "bradley_terry",
        "contexts": [
            {
                **entry,
                "winners": [scored.values["autonomy"].pk],
                "bradley_terry": {**entry["bradley_terry"], "winners": [facts]},
            }
        ],
    }
    assert results.context_scores(swapped)[scored.distress.pk].winners == {facts}
    assert results.context_scores({**swapped, "primary": "pagerank"})[
        scored.distress.pk
    ].winners == {scored.values["autonomy"].pk}

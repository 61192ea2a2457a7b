"""A researcher ("Rhea") in real Chromium downloads every export of a scored deliberation from
its Exports page, clicking each link as a person would, and finds in each file what the research
pages showed her: the participants, cards and judgments of the dashboard, the judgments the run
counted and the winners of the results page. A researcher of another deliberation ("Sol") gets
404 for the page and for the files.

The deliberation is the export tests' world (tests/graph/exports_world.py): two contexts, three
values, a banned participant kept in the data and left out of the scores, hidden content."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import networkx as nx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from elicit import access
from elicit.models import StaffAssignment
from tests.factories import DeliberationFactory
from tests.graph.exports_world import build_world

PASSWORD = "correct horse battery staple"
FORMATS = [
    "graph.json",
    "graph.graphml",
    "graph.gexf",
    "tables.zip",
    "transcripts.jsonl",
    "target.json",
    "target.md",
]


def researcher_of(username: str, deliberation) -> None:
    access.ensure_groups()
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=access.RESEARCHERS_GROUP))
    StaffAssignment.objects.create(user=user, deliberation=deliberation, role="researcher")


def seed() -> dict:
    world = build_world()
    world.deliberation.title = "Homework and screens"
    world.deliberation.save(update_fields=["title"])
    researcher_of("rhea", world.deliberation)
    researcher_of("sol", DeliberationFactory(title="Another study"))
    return {
        "slug": world.deliberation.slug,
        "run": world.run.pk,
        "hidden_message": world.hidden_message.content,
    }


@pytest.fixture
def world(orm, no_llm) -> dict:
    return orm(seed)


def sign_in(page: Page, username: str) -> None:
    page.goto("/research/")
    expect(page).to_have_url(re.compile(r"/research/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your deliberations")).to_be_visible()


def figure(page: Page, label: str) -> int:
    """A number of the dashboard's overview ("3 participants")."""
    return int(page.locator("ul.figures li", has_text=label).locator("strong").inner_text())


def csv_rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with archive.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))


def test_a_researcher_downloads_each_export_and_finds_what_the_pages_showed(
    browser_page, world, tmp_path
):
    page = browser_page
    slug = world["slug"]
    sign_in(page, "rhea")
    page.get_by_role("link", name="Homework and screens").click()

    # What the dashboard and the results page show.
    expect(page.get_by_role("heading", name="Homework and screens")).to_be_visible()
    shown = {
        "participants": figure(page, "participants"),
        "cards": figure(page, "values cards"),
        "judgments": figure(page, "upgrade judgments"),
    }
    page.get_by_role("link", name="Results", exact=True).click()
    counted = re.search(
        r"(\d+) judgments by (\d+) participants", page.locator(".run-meta").inner_text()
    )
    assert counted, page.locator(".run-meta").inner_text()
    run_judgments, run_participants = int(counted[1]), int(counted[2])
    winners = {
        article.locator("h3").inner_text(): article.locator(".winner").all_inner_texts()
        for article in page.locator("article.context-result").all()
    }
    assert winners == {"When it is hard": ["Value B"], "When it is urgent": ["Value C"]}

    page.get_by_role("link", name="Exports").click()
    expect(page.get_by_role("heading", name="Exports of “Homework and screens”")).to_be_visible()
    expect(page.locator("p.meta", has_text="Run ")).to_contain_text(f"Run {world['run']},")
    links = page.locator("ul.exports a")
    expect(links).to_have_text(FORMATS)

    files: dict[str, bytes] = {}
    for filename in FORMATS:
        with page.expect_download() as event:
            links.filter(has_text=filename).click()
        download = event.value
        assert download.failure() is None
        label = "" if filename in ("tables.zip", "transcripts.jsonl") else f"run-{world['run']}-"
        assert download.suggested_filename == f"{slug}-{label}{filename}"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        files[filename] = saved.read_bytes()
    # Downloading leaves the researcher on the Exports page.
    expect(page).to_have_url(re.compile(rf"/research/d/{slug}/export/$"))

    # graph.json: the run the page named, the judgments and participants it counted.
    graph = json.loads(files["graph.json"])
    assert graph["format"] == "moralgraph.graph"
    assert graph["deliberation"] == {"slug": slug, "title": "Homework and screens"}
    assert graph["run"]["id"] == world["run"]
    assert graph["run"]["n_judgments"] == run_judgments
    assert graph["run"]["input_counts"]["participants"] == run_participants
    titles = {value["id"]: value["title"] for value in graph["values"]}
    assert sorted(titles.values()) == ["Value A", "Value B", "Value C"]
    assert {
        context["text"]: [titles[v] for v in context["winners"]] for context in graph["contexts"]
    } == winners
    edges = graph["edges"]
    # Every counted judgment is a verdict on exactly one edge row (no story was shown both ways).
    assert sum(e["upgrade"] + e["not_upgrade"] + e["unsure"] for e in edges) == run_judgments

    # GraphML and GEXF: the same values and edges, readable by networkx.
    for filename, reader in (("graph.graphml", nx.read_graphml), ("graph.gexf", nx.read_gexf)):
        network = reader(io.BytesIO(files[filename]))
        assert network.number_of_nodes() == len(graph["values"]), filename
        assert network.number_of_edges() == len(edges), filename
        labels = sorted(network.nodes[node]["label"] for node in network.nodes)
        assert labels == ["Value A", "Value B", "Value C"], filename

    # tables.zip: every participant, card and answered judgment of the dashboard, and the
    # run's edges.
    with zipfile.ZipFile(io.BytesIO(files["tables.zip"])) as archive:
        assert archive.testzip() is None
        participants = csv_rows(archive, "participants.csv")
        cards = csv_rows(archive, "cards.csv")
        judgments = csv_rows(archive, "judgments.csv")
        values = csv_rows(archive, "values.csv")
        table_edges = csv_rows(archive, "edges.csv")
    assert len(participants) == shown["participants"]
    assert [p["banned"] for p in participants].count("true") == 1  # kept, and marked
    assert all(re.fullmatch(r"p_[0-9a-f]{16}", p["participant"]) for p in participants)
    assert len(cards) == shown["cards"]
    assert len([j for j in judgments if j["verdict"]]) == shown["judgments"]
    assert sorted(v["title"] for v in values) == ["Value A", "Value B", "Value C"]
    assert len(table_edges) == len(edges)

    # transcripts.jsonl: one interview per line, by the same pseudonyms, hidden text withheld.
    lines = files["transcripts.jsonl"].decode().splitlines()
    transcripts = [json.loads(line) for line in lines]
    assert len(transcripts) == shown["cards"]  # each interview here produced one card
    assert {t["participant"] for t in transcripts} == {p["participant"] for p in participants}
    assert all(t["messages"] for t in transcripts)
    assert world["hidden_message"] not in files["transcripts.jsonl"].decode()

    # target.json and target.md: the winners of the results page, with their provenance.
    target = json.loads(files["target.json"])
    assert target["format"] == "moralgraph.alignment-target"
    assert target["run"]["id"] == world["run"]
    assert {
        context["text"]: [w["title"] for w in context["winners"] if w["winner"]]
        for context in target["contexts"]
    } == winners
    for context in target["contexts"]:
        for winner in context["winners"]:
            assert winner["provenance"]["judgment_ids"], winner["title"]
    markdown = files["target.md"].decode()
    for context, titles_won in winners.items():
        assert f"## {context}" in markdown
        for title in titles_won:
            assert f"### {title}" in markdown


def test_a_researcher_of_another_deliberation_cannot_download_its_exports(request, new_page, world):
    page = new_page()
    slug = world["slug"]
    # Chromium logs each 404 page load as a console error: here they are the point.
    request.node.browser_session.expect_errors(rf"/research/d/{slug}/export/\S*: .*status of 404")
    sign_in(page, "sol")
    expect(page.get_by_role("link", name="Another study")).to_be_visible()
    expect(page.get_by_role("link", name="Homework and screens")).to_have_count(0)

    for url in [f"/research/d/{slug}/export/"] + [
        f"/research/d/{slug}/export/{name}" for name in FORMATS
    ]:
        response = page.goto(url)
        assert response is not None and response.status == 404, url
        expect(page.get_by_role("link", name="graph.json")).to_have_count(0)

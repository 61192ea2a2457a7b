"""Every export read back with the tools researchers use (json, networkx, csv) and compared with
the database and the scoring run: the same values, scores and edge counts, pseudonymous
participants, banned participants marked, hidden text withheld, no formula or HTML payload
live."""

import csv
import io
import json
import zipfile

import networkx as nx
import pytest

from elicit.models import Interview, Participant, ValuesCard
from graph import exports
from graph.models import JudgmentRevision, ScoringRun, UpgradeJudgment
from tests.graph.exports_world import FORMULA, XSS, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def read(filename, world, **kwargs):
    return b"".join(
        exports.export(filename, deliberation=world.deliberation, run=world.run, **kwargs)
    )


def run_scores(run):
    """{(context_id, value_id): score} as the scoring run stored it."""
    return {
        (c["context_id"], v): s
        for c in run.results["contexts"]
        for v, s in zip(c["values"], c["scores"], strict=True)
    }


def run_edges(run):
    """{(context, from, to): row} as the scoring run stored it."""
    columns = run.results["edges"]
    rows = [dict(zip(columns, r, strict=True)) for r in zip(*columns.values(), strict=True)]
    return {(r["context"], r["from_value"], r["to_value"]): r for r in rows}


def tables(world, **kwargs):
    with zipfile.ZipFile(io.BytesIO(read("tables.zip", world, **kwargs))) as archive:
        return {
            name: list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))
            for name in archive.namelist()
        }


def test_graph_json_carries_the_runs_scores_edges_and_parameters(world):
    data = json.loads(read("graph.json", world))
    assert data["run"]["params"] == world.run.params
    assert data["run"]["code_version"] == world.run.code_version
    assert data["run"]["input_counts"] == world.run.input_counts
    scores = {(int(c), v["id"]): s for v in data["values"] for c, s in v["scores"].items()}
    assert scores == run_scores(world.run)
    edges = {(e["context"], e["from_value"], e["to_value"]): e for e in data["edges"]}
    assert edges == run_edges(world.run)
    winners = {c["context_id"]: c["winners"] for c in data["contexts"]}
    assert winners == {world.hard.pk: [world.b.pk], world.urgent.pk: [world.c.pk]}
    texts = {c["context_id"]: c["text"] for c in data["contexts"]}
    assert texts[world.hard.pk] == "When it is hard"
    b = next(v for v in data["values"] if v["id"] == world.b.pk)
    assert b["n_cards"] == ValuesCard.objects.filter(canonical=world.b).count() == 2


def test_graph_json_keeps_html_inert_but_the_text_intact(world):
    raw = read("graph.json", world)
    assert b"<img" not in raw
    data = json.loads(raw)
    b = next(v for v in data["values"] if v["id"] == world.b.pk)
    assert XSS in b["description"]


@pytest.mark.parametrize(
    ("filename", "reader"), [("graph.graphml", nx.read_graphml), ("graph.gexf", nx.read_gexf)]
)
def test_graphml_and_gexf_open_in_networkx_with_the_runs_numbers(world, filename, reader):
    graph = reader(io.BytesIO(read(filename, world)))
    assert graph.is_directed()
    nodes = {int(n[1:]): d for n, d in graph.nodes(data=True)}
    assert set(nodes) == {world.a.pk, world.b.pk, world.c.pk}
    assert nodes[world.b.pk]["label"] == "Value B"
    for (context, value), score in run_scores(world.run).items():
        assert nodes[value][f"score_c{context}"] == pytest.approx(score, rel=1e-15)
    stored = run_edges(world.run)
    read_back = {(d["context_id"], int(u[1:]), int(v[1:])): d for u, v, d in graph.edges(data=True)}
    assert set(read_back) == set(stored)
    for key, row in stored.items():
        edge = read_back[key]
        for column in ("upgrade", "not_upgrade", "unsure", "reverse_upgrade", "total"):
            assert edge[column] == row[column]
        assert edge["likelihood"] == row["likelihood"]
        assert edge["entropy"] == row["entropy"]
        assert edge["kept"] is row["kept"]
        assert edge["weight"] == (row["likelihood"] if row["kept"] else 0.0)


@pytest.mark.parametrize(
    ("filename", "reader"), [("graph.graphml", nx.read_graphml), ("graph.gexf", nx.read_gexf)]
)
def test_control_characters_in_a_title_do_not_break_the_xml(world, filename, reader):
    world.a.title = "Value\x0bA <b>\x1f& co"
    world.a.save()
    graph = reader(io.BytesIO(read(filename, world)))
    assert graph.nodes[f"v{world.a.pk}"]["label"] == "ValueA <b>& co"


@pytest.mark.parametrize(
    ("filename", "reader"), [("graph.graphml", nx.read_graphml), ("graph.gexf", nx.read_gexf)]
)
def test_markup_in_a_description_reads_back_exactly_as_written(world, filename, reader):
    """Escaped once: Gephi shows "<" and "&", not "&lt;" and "&amp;"."""
    world.b.description = f"Listening first & then {XSS}"
    world.b.save()
    graph = reader(io.BytesIO(read(filename, world)))
    assert graph.nodes[f"v{world.b.pk}"]["description"] == world.b.description


def test_graphml_keeps_parallel_edges_of_different_contexts(world):
    """A -> B judged in two contexts is two edges, not one."""
    from tests.factories import HypothesisFactory
    from tests.graph.exports_world import judge

    ab_urgent = HypothesisFactory(
        deliberation=world.deliberation, context=world.urgent, from_value=world.a, to_value=world.b
    )
    judge(world.ada, ab_urgent, "upgrade")
    from graph import pipeline

    world.run = pipeline.run_scoring(deliberation_id=world.deliberation.pk)
    graph = nx.read_graphml(io.BytesIO(read("graph.graphml", world)))
    assert graph.number_of_edges(f"v{world.a.pk}", f"v{world.b.pk}") == 2


def test_tables_match_the_database_row_for_row(world):
    JudgmentRevision.objects.create(judgment=world.formula_comment, verdict="not_upgrade")
    JudgmentRevision.objects.create(judgment=world.formula_comment, verdict="upgrade")
    t = tables(world)
    assert set(t) == {
        "participants.csv",
        "questions.csv",
        "contexts.csv",
        "values.csv",
        "cards.csv",
        "judgments.csv",
        "votes.csv",
        "survey.csv",
        "scores.csv",
        "context_results.csv",
        "edges.csv",
    }
    pid = {
        p.pk: exports.pseudonym(world.deliberation.pk, p.public_id)
        for p in Participant.objects.all()
    }
    assert [r["participant"] for r in t["participants.csv"]] == list(pid.values())
    judgments = UpgradeJudgment.objects.order_by("pk")
    assert [int(r["judgment_id"]) for r in t["judgments.csv"]] == [j.pk for j in judgments]
    assert [r["verdict"] for r in t["judgments.csv"]] == [j.verdict for j in judgments]
    assert [int(r["n_revisions"]) for r in t["judgments.csv"]] == [
        j.revisions.count() for j in judgments
    ]
    assert [r["participant"] for r in t["judgments.csv"]] == [
        pid[j.participant_id] for j in judgments
    ]
    votes = {(int(r["value_id"]), r["chosen"]) for r in t["votes.csv"]}
    assert votes == {(world.a.pk, "false"), (world.b.pk, "true"), (world.c.pk, "false")}
    assert [int(r["card_id"]) for r in t["cards.csv"]] == list(
        ValuesCard.objects.order_by("pk").values_list("pk", flat=True)
    )
    survey = t["survey.csv"][0]
    assert (survey["felt_represented"], survey["graph_fair"], survey["trust_process"]) == (
        "5",
        "4",
        "",
    )
    scores = {
        (int(r["context_id"]), int(r["value_id"])): float(r["score"]) for r in t["scores.csv"]
    }
    assert scores == run_scores(world.run)
    edges = {
        (int(r["context"]), int(r["from_value"]), int(r["to_value"])): r for r in t["edges.csv"]
    }
    for key, row in run_edges(world.run).items():
        assert int(edges[key]["upgrade"]) == row["upgrade"]
        assert float(edges[key]["likelihood"]) == row["likelihood"]
        assert edges[key]["kept"] == ("true" if row["kept"] else "false")


def test_participants_are_pseudonymous_and_panel_ids_need_asking(world):
    raw = read("tables.zip", world) + read("transcripts.jsonl", world) + read("graph.json", world)
    for participant in Participant.objects.all():
        assert str(participant.public_id).encode() not in raw
    assert b"PROLIFIC-ADA" not in raw
    without = tables(world)["participants.csv"]
    assert "panel_pid" not in without[0]
    with_ids = tables(world, panel_ids=True)["participants.csv"]
    assert with_ids[0]["panel_pid"] == "PROLIFIC-ADA"
    # Stable: a second export gives the same pseudonyms.
    assert [r["participant"] for r in tables(world)["participants.csv"]] == [
        r["participant"] for r in without
    ]


def test_banned_participants_are_kept_and_marked(world):
    t = tables(world)
    mallory = exports.pseudonym(world.deliberation.pk, world.mallory.public_id)
    rows = {r["participant"]: r for r in t["participants.csv"]}
    assert rows[mallory]["banned"] == "true"
    assert {r["banned"] for p, r in rows.items() if p != mallory} == {"false"}
    marks = {r["participant_banned"] for r in t["judgments.csv"] if r["participant"] == mallory}
    assert marks == {"true"}


def test_hidden_content_is_marked_and_its_text_withheld(world):
    t = tables(world)
    hidden = next(r for r in t["judgments.csv"] if int(r["judgment_id"]) == world.hidden_comment.pk)
    assert (hidden["comment_hidden"], hidden["comment"], hidden["verdict"]) == (
        "true",
        "",
        "upgrade",
    )
    lines = [json.loads(line) for line in read("transcripts.jsonl", world).splitlines()]
    ada = next(i for i in lines if i["interview_id"] == world.interviews[world.ada.pk].pk)
    last = ada["messages"][-1]
    assert (last["hidden"], last["content"]) == (True, "")
    assert b"something a moderator hid" not in read("transcripts.jsonl", world)


def test_spreadsheet_formulas_are_neutralised_but_numbers_are_not(world):
    t = tables(world)
    ada = exports.pseudonym(world.deliberation.pk, world.ada.public_id)
    party = next(r for r in t["participants.csv"] if r["participant"] == ada)["demographic_party"]
    assert party == "'" + FORMULA
    titles = {r["title"] for r in t["cards.csv"]}
    assert "'" + FORMULA in titles
    comment = next(
        r for r in t["judgments.csv"] if int(r["judgment_id"]) == world.formula_comment.pk
    )
    assert comment["comment"] == "'-2+3 is what I think"
    assert t["survey.csv"][0]["comment"] == "'@SUM(1,2) fair"
    for text in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert exports.cell(text) == "'" + text
    assert exports.cell(-0.5) == -0.5  # a number stays a number


def test_transcripts_hold_every_interview_in_order(world):
    lines = [json.loads(line) for line in read("transcripts.jsonl", world).splitlines()]
    assert [line["interview_id"] for line in lines] == list(
        Interview.objects.order_by("pk").values_list("pk", flat=True)
    )
    first = lines[0]
    interview = Interview.objects.get(pk=first["interview_id"])
    assert [m["seq"] for m in first["messages"]] == list(
        interview.messages.order_by("seq").values_list("seq", flat=True)
    )
    assert first["participant"] == exports.pseudonym(
        world.deliberation.pk, interview.participant.public_id
    )
    assert first["card_id"] == interview.card.pk
    assert XSS in first["messages"][1]["content"]
    assert b"<img" not in read("transcripts.jsonl", world)


def test_without_a_scoring_run_the_graph_cannot_be_exported_but_the_tables_can():
    world = build_world(score=False)
    with pytest.raises(exports.NoScoringRun):
        exports.resolve_run(world.deliberation)
    with pytest.raises(exports.NoScoringRun):
        read("graph.json", world)
    t = tables(world)
    assert t["edges.csv"] == [] and len(t["judgments.csv"]) == UpgradeJudgment.objects.count()


def test_a_run_is_found_by_name_or_id_and_the_latest_leaves_flagged_runs_aside(world):
    from graph import pipeline

    named = pipeline.run_scoring(deliberation_id=world.deliberation.pk, name="paper")
    flagged = pipeline.run_scoring(deliberation_id=world.deliberation.pk, include_flagged=True)
    assert exports.resolve_run(world.deliberation, "paper") == named
    assert exports.resolve_run(world.deliberation, str(world.run.pk)) == world.run
    assert exports.resolve_run(world.deliberation) == named
    assert exports.resolve_run(world.deliberation, str(flagged.pk)) == flagged
    with pytest.raises(exports.NoScoringRun):
        exports.resolve_run(world.deliberation, "nope")
    ScoringRun.objects.filter(pk=named.pk).update(status=ScoringRun.Status.FAILED)
    assert exports.resolve_run(world.deliberation) == world.run


def test_bradley_terry_and_bootstrap_figures_are_exported_when_the_run_has_them(world):
    results = world.run.results
    for context in results["contexts"]:
        n = len(context["values"])
        context["bradley_terry"] = {
            "strength": [0.1 * (i + 1) for i in range(n)],
            "se": [0.01] * n,
            "winners": [context["values"][-1]],
        }
        context["estimators_agree"] = False
    world.run.results = results
    world.run.save()
    data = json.loads(read("graph.json", world))
    assert all("bradley_terry" in c for c in data["contexts"])
    b = next(v for v in data["values"] if v["id"] == world.b.pk)
    assert b["contexts"][str(world.hard.pk)]["bt_strength"] == pytest.approx(0.2)
    rows = tables(world)["scores.csv"]
    assert {"bt_strength", "bt_se", "bt_winner"} <= set(rows[0])

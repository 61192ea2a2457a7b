"""The alignment target: the run's winners per context, with policies and provenance, as JSON
and as Markdown that cannot carry HTML or links."""

import re

import pytest
from django.contrib.contenttypes.models import ContentType

from elicit.models import ModerationFlag, ValuesCard
from graph import pipeline
from graph.models import UpgradeJudgment
from graph.target import alignment_target, md_escape, target_markdown
from tests.graph.exports_world import XSS, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return build_world()


def live(markdown):
    """What CommonMark would still interpret: the text without its backslash-escaped
    characters (an escaped character is rendered literally)."""
    return re.sub(r"\\.", "", markdown)


def by_context(target):
    return {c["context_id"]: c for c in target["contexts"]}


def test_the_target_names_each_contexts_winner_with_its_policies(world):
    target = alignment_target(world.run)
    contexts = by_context(target)
    hard = contexts[world.hard.pk]
    assert [w["value_id"] for w in hard["winners"]] == [world.b.pk]
    winner = hard["winners"][0]
    assert winner["policies"] == world.b.policies
    assert winner["rank"] == 1
    stored = next(c for c in world.run.results["contexts"] if c["context_id"] == world.hard.pk)
    assert winner["score"] == stored["scores"][stored["values"].index(world.b.pk)]
    assert hard["support"] == stored["support"]
    assert hard["questions"] == [{"slug": "homework", "text": world.question.text}]
    assert [w["value_id"] for w in contexts[world.urgent.pk]["winners"]] == [world.c.pk]


def test_the_provenance_leads_to_cards_interviews_and_the_judgments_that_counted(world):
    winner = by_context(alignment_target(world.run))[world.hard.pk]["winners"][0]
    prov = winner["provenance"]
    cards = ValuesCard.objects.filter(canonical=world.b).order_by("pk")
    assert [c["card_id"] for c in prov["cards"]] == [c.pk for c in cards]
    assert prov["interviews"] == sorted(c.interview_id for c in cards)
    assert [(e["from_value"], e["upgrade"]) for e in prov["edges_in"]] == [(world.a.pk, 2)]
    counted = UpgradeJudgment.objects.filter(
        context=world.hard, participant__in=[world.ada, world.bo]
    ).exclude(verdict="")
    assert prov["judgment_ids"] == sorted(j.pk for j in counted)  # Mallory is banned


def test_a_flagged_vote_is_not_listed_for_a_run_that_left_it_out(world):
    flagged = UpgradeJudgment.objects.get(participant=world.ada, hypothesis=world.ab)
    ModerationFlag.objects.create(
        deliberation=world.deliberation,
        content_type=ContentType.objects.get_for_model(UpgradeJudgment),
        object_id=flagged.pk,
        source=ModerationFlag.Source.VOTE_QUALITY,
        reason="too_fast",
    )
    run = pipeline.run_scoring(deliberation_id=world.deliberation.pk, name="no-flagged")
    winners = by_context(alignment_target(run))[world.hard.pk]["winners"]
    assert all(flagged.pk not in w["provenance"]["judgment_ids"] for w in winners)


def test_the_bradley_terry_winners_lead_when_the_run_is_a_bradley_terry_run(world):
    run = pipeline.run_scoring(deliberation_id=world.deliberation.pk, estimator="bradley_terry")
    assert run.status == "done", run.error
    contexts = by_context(alignment_target(run))
    for stored in run.results["contexts"]:
        context = contexts[stored["context_id"]]
        assert context["winners_by"] == "bradley_terry"
        assert [w["value_id"] for w in context["winners"]] == stored["bradley_terry"]["winners"]
        assert context["bt_margin_z"] == stored["bradley_terry"]["margin_z"]
    pagerank_run = by_context(alignment_target(world.run))
    assert pagerank_run[world.hard.pk]["winners_by"] == "pagerank"


def test_the_markdown_reads_as_a_prompt_and_carries_no_html(world):
    text = target_markdown(alignment_target(world.run))
    assert "## When it is hard" in text
    assert "### Value B" in text
    assert "- MOMENTS when it matters" in text
    assert "<img" not in live(text)
    assert md_escape(XSS) in text


@pytest.mark.parametrize(
    ("payload", "forbidden"),
    [
        ("<script>alert(1)</script>", "<"),
        ("[click](javascript:alert(1))", "["),
        ("![x](http://evil/track.png)", "["),
        ("&lt;b&gt;", "&"),
        ("# A heading", "#"),
        ("- a list item", "-"),
        ("1. a numbered item", "."),
        ("`code` and *emphasis*", "`"),
        ("line one\n\n<div>two</div>", "\n"),
    ],
)
def test_markdown_escaping_defuses_each_payload(payload, forbidden):
    assert forbidden not in live(md_escape(payload))


def test_a_hidden_winner_keeps_its_place_without_its_text(world):
    from django.utils import timezone

    world.b.hidden_at = timezone.now()
    world.b.save()
    winner = by_context(alignment_target(world.run))[world.hard.pk]["winners"][0]
    assert (winner["value_id"], winner["hidden"], winner["title"]) == (world.b.pk, True, "")
    assert "Value B" not in target_markdown(alignment_target(world.run))

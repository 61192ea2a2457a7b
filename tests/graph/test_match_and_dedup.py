"""After the card: "is one of these your value?", and deduplication in the background."""

import pytest

from elicit.llm import LLMError
from graph import services
from graph.models import CanonicalValue, DedupDecision
from tests.factories import CanonicalValueFactory, DeliberationFactory, ValuesCardFactory

pytestmark = pytest.mark.django_db

JUDGED = dict(
    title="Honest facts about violence",
    description="Giving people accurate facts about what happened, without spin.",
    policies=["ACCURATE details of events", "SOURCES that can be checked", "MOMENTS of doubt"],
)


def value_like(card, **changes):
    fields = dict(title=card.title, description=card.description, policies=list(card.policies))
    fields.update(changes)
    return CanonicalValueFactory(deliberation=card.deliberation, **fields)


def test_a_card_with_nothing_similar_becomes_a_new_value():
    card = ValuesCardFactory(**JUDGED)
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.NEW_VALUE
    assert decision.reason == "No canonical value existed yet."
    value = CanonicalValue.objects.get()
    assert (value.title, value.representative) == (card.title, card)
    card.refresh_from_db()
    assert card.canonical == value


def test_the_same_value_in_other_order_links_automatically_and_twice_decides_once():
    card = ValuesCardFactory(**JUDGED)
    existing = value_like(card, policies=list(reversed(JUDGED["policies"])))
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.AUTO_MATCH
    assert decision.similarity == pytest.approx(1.0, abs=1e-6)
    assert decision.canonical == existing
    assert services.deduplicate(card_id=card.pk) is None
    assert DedupDecision.objects.count() == 1
    assert CanonicalValue.objects.count() == 1


def test_distinct_values_that_share_words_are_not_merged_without_a_judge(settings):
    settings.LLM_ENABLED = False
    card = ValuesCardFactory(**JUDGED)
    value_like(
        card,
        title="Facts about violence hurt",
        description="Sparing people graphic facts about violence that could hurt them.",
        policies=["FEELINGS of the person asking", "MOMENTS of distress", "SIGNS of trauma"],
    )
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.NEW_VALUE
    assert CanonicalValue.objects.count() == 2


def ambiguous_pair():
    card = ValuesCardFactory(**JUDGED)
    value = value_like(
        card,
        title="Honest facts about events",
        description="Giving people accurate facts about what happened.",
        policies=["ACCURATE details of events", "SOURCES people can check", "MOMENTS of doubt"],
    )
    from graph import embeddings

    similarity = embeddings.nearest(services.card_text(card), [services.value_text(value)])[0][1]
    thresholds = embeddings.backend().thresholds
    assert thresholds.different <= similarity < thresholds.same, similarity
    return card, value


def test_an_ambiguous_pair_goes_to_the_judge_whose_reason_is_recorded(llm):
    card, value = ambiguous_pair()
    llm.queue_tool_call("same_value", {"same": True, "reason": "Both attend to accurate facts."})
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.LLM_JUDGE
    assert (decision.canonical, decision.reason) == (value, "Both attend to accurate facts.")
    assert decision.prompt_version == "dedup-judge-v1"
    request = llm.chat_requests[-1].body
    assert request["tool_choice"]["function"]["name"] == "same_value"
    assert "<participant_text>" in request["messages"][1]["content"]


def test_a_failing_judge_decides_nothing_so_the_task_can_retry(llm, settings):
    settings.LLM_MAX_RETRIES = 0
    card, _ = ambiguous_pair()
    llm.queue_error(500)
    with pytest.raises(LLMError):
        services.deduplicate(card_id=card.pk)
    assert not DedupDecision.objects.exists()


def confirmed_card(client_browser):
    from elicit.models import ValuesCard

    return ValuesCard.objects.get(interview=client_browser.interview)


@pytest.fixture
def ada_with_card(transactional_db, no_llm):
    from elicit.demo import seed_demo
    from tests.elicit.helpers import join

    seed_demo()
    ada = join()
    response = ada.confirm_scripted_card()
    assert response["Location"] == f"/d/demo/interview/{ada.interview.pk}/match/"
    return ada


def test_the_participant_sees_close_values_and_can_join_one(ada_with_card):
    ada = ada_with_card
    card = confirmed_card(ada)
    close = value_like(card, title="Support that never judges")
    far = CanonicalValueFactory(
        deliberation=card.deliberation,
        title="Weapons facts",
        description="Exact weapon names.",
        policies=["NAMES of weapons used on the day"],
    )
    page = ada.client.get(f"/d/demo/interview/{ada.interview.pk}/match/").content.decode()
    assert "Support that never judges" in page
    assert far.title not in page
    response = ada.client.post(
        f"/d/demo/interview/{ada.interview.pk}/match/", {"value": str(close.pk)}
    )
    assert response.status_code == 302
    card.refresh_from_db()
    assert (card.canonical, card.chosen_canonical) == (close, close)
    assert DedupDecision.objects.get(undone_at__isnull=True).method == "participant"


def test_a_value_that_was_not_offered_cannot_be_joined(ada_with_card):
    ada = ada_with_card
    card = confirmed_card(ada)
    value_like(card)
    elsewhere = CanonicalValueFactory(deliberation=DeliberationFactory())
    response = ada.client.post(
        f"/d/demo/interview/{ada.interview.pk}/match/", {"value": str(elsewhere.pk)}
    )
    assert response.status_code == 422
    card.refresh_from_db()
    assert card.chosen_canonical is None
    assert not DedupDecision.objects.filter(card=card, method="participant").exists()


def test_keeping_the_value_distinct_sends_it_to_deduplication(
    ada_with_card, django_capture_on_commit_callbacks
):
    ada = ada_with_card
    card = confirmed_card(ada)
    value_like(card, title="Support that never judges")
    with django_capture_on_commit_callbacks(execute=True):
        ada.client.post(f"/d/demo/interview/{ada.interview.pk}/match/", {"value": "distinct"})
    card.refresh_from_db()
    assert card.chosen_canonical is None
    assert DedupDecision.objects.filter(card=card).exists()


def test_another_participant_cannot_see_someones_match_step(ada_with_card):
    from tests.elicit.helpers import join

    bo = join()
    url = f"/d/demo/interview/{ada_with_card.interview.pk}/match/"
    assert bo.client.get(url).status_code == 404


def test_a_value_made_from_the_card_itself_is_not_offered_back(ada_with_card):
    ada = ada_with_card
    card = confirmed_card(ada)
    services.deduplicate(card_id=card.pk)  # ran before the participant reached the step
    assert CanonicalValue.objects.filter(representative=card).exists()
    assert services.closest_values(card=card) == []
    response = ada.client.get(f"/d/demo/interview/{ada.interview.pk}/match/")
    assert response.status_code == 302

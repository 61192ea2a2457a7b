"""After the card: "is one of these your value?", and deduplication in the background."""

import pytest

from elicit.llm import LLMError
from graph import embeddings, services
from graph.models import CanonicalValue, DedupDecision
from tests.factories import (
    CanonicalValueFactory,
    DeliberationFactory,
    ParticipantFactory,
    ValuesCardFactory,
)

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
        description="Telling people what happened.",
        policies=["ACCURATE details of events", "SOURCES people can check", "MOMENTS of confusion"],
    )
    similarity = embeddings.nearest(services.card_text(card), [services.value_text(value)])[0][1]
    thresholds = embeddings.thresholds(embeddings.backend())
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


# --- Values as the centroid of their cards; the judge asked about the nearest few ---------------

HONEST_ATYPICAL = dict(  # a first card that says more than the others do
    title="Honest facts about violence and its victims",
    description="Giving people accurate facts about what happened, without spin, and also "
    "remembering the victims and what the violence did to their families.",
    policies=[
        "ACCURATE details of events",
        "SOURCES that can be checked",
        "MOMENTS of doubt",
        "NAMES of the victims",
        "FAMILIES of the people who were hurt",
    ],
)


def test_the_value_takes_the_wording_of_its_most_typical_card_not_its_first():
    deliberation = DeliberationFactory()
    first = ValuesCardFactory(deliberation=deliberation, **HONEST_ATYPICAL)
    services.deduplicate(card_id=first.pk)
    typical = [ValuesCardFactory(deliberation=deliberation, **JUDGED) for _ in range(2)]
    for card in typical:
        decision = services.deduplicate(card_id=card.pk)
        assert decision.method == DedupDecision.Method.AUTO_MATCH
    value = CanonicalValue.objects.get()
    assert value.representative == typical[0]
    assert (value.title, value.policies) == (JUDGED["title"], JUDGED["policies"])


def test_a_value_edited_by_hand_keeps_its_wording_when_cards_join():
    first = ValuesCardFactory(**JUDGED)
    value = services.deduplicate(card_id=first.pk).canonical
    value.title = "Honest facts about violence, edited"
    value.save()
    card = ValuesCardFactory(deliberation=first.deliberation, **JUDGED)
    decision = services.deduplicate(card_id=card.pk)
    assert decision.canonical == value
    value.refresh_from_db()
    assert value.title == "Honest facts about violence, edited"


def test_when_the_nearest_value_is_judged_different_the_next_one_is_asked(llm):
    card, nearest = ambiguous_pair()
    farther = value_like(
        card,
        title="Facts about what happened",
        description="Telling people the events.",
        policies=["DETAILS of events", "MOMENTS of confusion", "RECORDS people can check"],
    )
    neighbours = services.closest_values(card=card)
    assert [n.value for n in neighbours[:2]] == [nearest, farther]
    thresholds = embeddings.thresholds(embeddings.backend())
    assert neighbours[1].similarity >= thresholds.different, neighbours
    llm.queue_tool_call("same_value", {"same": False, "reason": "A is about doubt."})
    llm.queue_tool_call("same_value", {"same": True, "reason": "Both want the record."})
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.LLM_JUDGE
    assert (decision.canonical, decision.nearest) == (farther, nearest)
    assert "A is about doubt." in decision.reason and "Both want the record." in decision.reason
    assert len(llm.chat_requests) == 2


def test_the_judge_is_asked_about_no_more_values_than_the_setting_allows(llm, settings):
    settings.DEDUP_JUDGE_CANDIDATES = 1
    card, _ = ambiguous_pair()
    value_like(
        card,
        title="Facts about what happened",
        description="Telling people the events.",
        policies=["DETAILS of events", "MOMENTS of confusion", "RECORDS people can check"],
    )
    llm.queue_tool_call("same_value", {"same": False, "reason": "A is about doubt."})
    decision = services.deduplicate(card_id=card.pk)
    assert decision.method == DedupDecision.Method.LLM_JUDGE
    assert decision.canonical.representative == card  # a new value: the other was not asked
    assert len(llm.chat_requests) == 1


def test_thresholds_set_in_the_settings_replace_the_backends(settings):
    settings.LLM_ENABLED = False
    card, value = ambiguous_pair()
    settings.DEDUP_SAME_THRESHOLD = 0.5
    decision = services.deduplicate(card_id=card.pk)
    assert (decision.method, decision.canonical) == (DedupDecision.Method.AUTO_MATCH, value)
    assert "0.5" in decision.reason


class CountingBackend(embeddings.LexicalBackend):
    """A dense backend that counts the texts it is asked to embed, as a model would cost."""

    name, model, sparse = "counting", "counting-v1", False

    def __init__(self):
        super().__init__()
        self.vectorizer.set_params(n_features=2**10)
        self.texts = []

    def embed(self, texts):
        self.texts.extend(texts)
        dense = super().embed(texts).toarray().astype("float32")
        return dense


def test_each_card_is_embedded_once_per_wording(monkeypatch):
    from graph.models import CardEmbedding

    engine = CountingBackend()
    monkeypatch.setattr(embeddings, "backend", lambda name=None: engine)
    deliberation = DeliberationFactory()
    cards = [ValuesCardFactory(deliberation=deliberation, **JUDGED) for _ in range(3)]
    cards.append(ValuesCardFactory(deliberation=deliberation, title="Other", policies=["X y"]))
    for card in cards:
        services.deduplicate(card_id=card.pk)
    assert len(engine.texts) == len(cards)
    assert CardEmbedding.objects.filter(backend="counting").count() == len(cards)
    assert CanonicalValue.objects.count() == 2
    # A card whose wording changed is embedded again, once.
    first = cards[0]
    first.title = "Honest facts, reworded"
    first.save()
    services.closest_values(card=first)
    services.closest_values(card=first)
    assert engine.texts[len(cards) :] == [services.card_text(first)]


def test_the_centroids_kept_between_requests_follow_every_change_to_a_values_cards(
    django_user_model,
):
    """The match step reuses each value's centroid until its cards change: after a card
    joins, is reworded by a moderator, is hidden or is erased, the similarities offered are
    those computed from scratch."""
    from graph import privacy
    from graph.moderation import services as moderation

    admin = django_user_model.objects.create_superuser("admin", "a@example.org", "pw")
    deliberation = DeliberationFactory()
    someone = ParticipantFactory(deliberation=deliberation)
    first = ValuesCardFactory(deliberation=deliberation, participant=someone, **JUDGED)
    services.deduplicate(card_id=first.pk)
    asking = ValuesCardFactory(deliberation=first.deliberation, **HONEST_ATYPICAL)
    other = value_like(asking, title="Facts about what happened", policies=["DETAILS of events"])

    def offered():
        return [(n.value.pk, round(n.similarity, 6)) for n in services.closest_values(card=asking)]

    def from_scratch():
        services._centroids.clear()
        return offered()

    seen = [offered()]
    assert seen[-1] == from_scratch()
    joined = ValuesCardFactory(deliberation=first.deliberation, **HONEST_ATYPICAL)
    services.choose_value(card=joined, value=other)
    services.deduplicate(card_id=joined.pk)
    seen.append(offered())
    assert seen[-1] == from_scratch()
    moderation.edit_card(
        actor=admin,
        card=first,
        title="Quiet streets at night",
        description="Letting people sleep without noise from the road.",
        policies=[
            "HOURS when the street is quiet",
            "WINDOWS that keep the noise out",
            "SLEEP that is not broken",
        ],
        reason="test",
    )
    seen.append(offered())
    assert seen[-1] == from_scratch()
    moderation.hide(actor=admin, target=joined, reason="test")
    seen.append(offered())
    assert seen[-1] == from_scratch()
    privacy.erase_participant(participant=someone, rescore=False)
    seen.append(offered())
    assert seen[-1] == from_scratch()
    # Each change moved what was offered: the checks above compared different figures.
    assert len({tuple(s) for s in seen[:4]}) == 4, seen


# --- Undoing a decision ---------------------------------------------------------------------------


def linked_pair():
    """Two cards of one value: the first made it, the second joined it automatically."""
    first = ValuesCardFactory(**HONEST_ATYPICAL)
    made = services.deduplicate(card_id=first.pk)
    second = ValuesCardFactory(deliberation=first.deliberation, **JUDGED)
    joined = services.deduplicate(card_id=second.pk)
    assert joined.method == DedupDecision.Method.AUTO_MATCH
    assert joined.canonical == made.canonical
    return made, joined


def test_undoing_a_link_makes_the_card_a_value_of_its_own_and_keeps_the_decision(admin_user):
    made, joined = linked_pair()
    replacement = services.undo_decision(decision=joined, user=admin_user)
    joined.refresh_from_db()
    assert (joined.undone_by, joined.undone_at is not None) == (admin_user, True)
    assert replacement.method == DedupDecision.Method.MODERATOR
    assert f"Undid decision {joined.pk}" in replacement.reason
    card = replacement.card
    card.refresh_from_db()
    assert card.canonical == replacement.canonical != made.canonical
    assert replacement.canonical.title == JUDGED["title"]
    assert CanonicalValue.objects.count() == 2
    assert services.deduplicate(card_id=card.pk) is None  # no later run re-links it


def test_undoing_a_new_value_joins_the_nearest_value_and_retires_the_empty_one(llm):
    card, value = ambiguous_pair()
    llm.queue_tool_call("same_value", {"same": False, "reason": "Different."})
    llm.queue_tool_call("same_value", {"same": False, "reason": "Different."})
    decision = services.deduplicate(card_id=card.pk)
    own = decision.canonical
    assert own != value
    replacement = services.undo_decision(decision=decision)
    assert replacement.canonical == value
    own.refresh_from_db()
    assert own.merged_into == value
    assert list(services.visible_values(card.deliberation)) == [value]


def test_undoing_the_cards_wording_passes_it_to_the_best_remaining_card():
    made, joined = linked_pair()
    third = ValuesCardFactory(deliberation=made.card.deliberation, **JUDGED)
    services.deduplicate(card_id=third.pk)
    value = made.canonical
    value.refresh_from_db()
    assert value.representative == joined.card
    services.undo_decision(decision=services.DedupDecision.objects.get(card=joined.card))
    value.refresh_from_db()
    assert value.representative == third


def test_a_first_value_cannot_be_undone_into_nothing():
    made = services.deduplicate(card_id=ValuesCardFactory(**JUDGED).pk)
    with pytest.raises(services.UndoError, match="no other value to join"):
        services.undo_decision(decision=made)
    made.refresh_from_db()
    assert made.undone_at is None


def test_an_admin_undoes_decisions_from_the_admin_list(admin_client, admin_user):
    made, joined = linked_pair()
    response = admin_client.post(
        "/admin/graph/dedupdecision/",
        {"action": "undo_dedup_decisions", "_selected_action": [made.pk, joined.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "1 decision undone and replaced." in page
    # The first card made the value when nothing else existed: there is nothing to join.
    assert "There is no other value to join" in page
    joined.refresh_from_db()
    made.refresh_from_db()
    assert (joined.undone_by, made.undone_at) == (admin_user, None)

"""The interview without a language model (the embedded default): the scripted interviewer
asks fixed questions and builds the card from the participant's own answers."""

import pytest
from asgiref.sync import sync_to_async

from elicit.demo import seed_demo
from elicit.models import Interview, Message, ValuesCard
from tests.elicit.helpers import SCRIPTED_ANSWERS, collect, communicator, join, send

ANSWERS = SCRIPTED_ANSWERS


@pytest.fixture
def demo(transactional_db, no_llm):
    return seed_demo()[0]


def test_the_interview_opens_with_the_question(demo):
    ada = join()
    page = ada.page()
    assert (
        "Help us figure out how an AI assistant should respond to questions like this one" in page
    )
    assert "runs without a language model" in page
    assert ada.interview.interviewer == Interview.Interviewer.SCRIPTED
    assert ada.interview.prompt_version == "scripted-v1"


def test_the_scripted_journey_ends_with_a_card_made_of_the_participants_words(demo):
    ada = join()
    for answer in ANSWERS:
        assert ada.send_http(answer).status_code == 302
    ada.interview.refresh_from_db()
    assert ada.interview.status == Interview.Status.CARD_PROPOSED
    draft = ada.interview.draft_card
    assert draft["title"] == "Support without judgment"
    assert draft["policies"] == [
        "MOMENTS when she feels judged",
        "SIGNS of fear in her voice",
        "OPPORTUNITIES to let her decide",
    ]
    assert "whether she felt judged" in draft["description"]
    page = ada.page()
    assert 'value="Support without judgment"' in page  # the card renders as an editable card

    response = ada.client.post(
        f"/d/demo/interview/{ada.interview.pk}/card/",
        {**draft, "policies": "\n".join(draft["policies"]), "title": "Support, never judgment"},
    )
    assert response.status_code == 302
    card = ValuesCard.objects.get(interview=ada.interview)
    assert card.title == "Support, never judgment"
    assert card.question == ada.interview.question
    assert card.prompt_version == "scripted-v1"
    # The interviewer's wording is kept as the first revision, so the edit is auditable.
    assert card.revisions.get().title == "Support without judgment"


def test_an_invalid_card_is_refused_with_messages_and_the_input_is_kept(demo):
    ada = join()
    for answer in ANSWERS:
        ada.send_http(answer)
    response = ada.client.post(
        f"/d/demo/interview/{ada.interview.pk}/card/",
        {"title": "<b>Bold</b> claim here", "description": "Fine.", "policies": "only one item"},
    )
    assert response.status_code == 422
    text = response.content.decode()
    assert "Plain text only" in text
    assert "between 3 and 7" in text
    assert "&lt;b&gt;Bold&lt;/b&gt; claim here" in text  # kept, and shown escaped
    assert not ValuesCard.objects.exists()


def test_a_reload_shows_the_interview_exactly_as_it_was(demo):
    ada = join()
    ada.send_http(ANSWERS[0])
    first = ada.page()
    assert ANSWERS[0] in first
    assert "Can you tell me about a time" in first
    assert first.count('class="msg ') == ada.page().count('class="msg ') == 3


@pytest.mark.django_db(transaction=True)
async def test_over_the_websocket_the_participant_reaches_a_card(no_llm):
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    comm = communicator(ada)
    connected, _ = await comm.connect()
    assert connected
    try:
        await collect(comm, lambda text: 'id="transcript"' in text)  # the catch-up
        for answer in ANSWERS:
            await send(comm, answer)
            frames = await collect(comm, lambda text: "Send</button>" in text)
            assert answer.splitlines()[0].replace("'", "&#x27;") in "".join(frames)
        assert 'id="card-section"' in "".join(frames)
        assert "Support without judgment" in "".join(frames)
    finally:
        await comm.disconnect()
    interview = await Interview.objects.aget(pk=ada.interview.pk)
    assert interview.status == Interview.Status.CARD_PROPOSED
    assert await Message.objects.filter(interview=interview).acount() == 11


def test_the_same_message_resent_is_stored_once(demo):
    ada = join()
    ada.send_http("Hello there, this matters.", client_id="same-id")
    ada.send_http("Hello there, this matters.", client_id="same-id")
    assert Message.objects.filter(interview=ada.interview, role="participant").count() == 1


def test_with_the_broker_unreachable_a_confirmed_card_is_kept_and_the_journey_goes_on(
    demo, monkeypatch, caplog
):
    """Confirming queues the card's moderation check and its deduplication for the workers.
    With the broker away, the card is saved all the same and the participant moves on; the
    operators get warnings, and the scheduled pipeline deduplicates the card later."""
    from kombu.exceptions import OperationalError

    from elicit import tasks as elicit_tasks
    from graph import tasks as graph_tasks

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    ada = join()
    monkeypatch.setattr(elicit_tasks.moderate_text, "apply_async", unreachable)
    monkeypatch.setattr(graph_tasks.deduplicate_card, "apply_async", unreachable)
    response = ada.confirm_scripted_card()
    assert response.status_code == 302
    card = ValuesCard.objects.get(participant=ada.participant)
    assert ada.client.get(response["Location"], follow=True).status_code == 200
    assert f"moderation check of valuescard {card.pk}" in caplog.text
    assert f"deduplication of card {card.pk}" in caplog.text

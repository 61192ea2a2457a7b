"""Arriving (open links, panel links, invites) and bad input in the chat."""

import pytest
from django.test import Client

from elicit.demo import seed_demo
from elicit.models import Deliberation, Invite, Message, Participant
from tests.elicit.helpers import join

# The interview turn crosses into the database thread (as it does under ASGI), which needs
# committed data: these tests run outside a wrapping transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(transactional_db, no_llm):
    return seed_demo()[0]


def test_consent_is_required_and_the_answers_are_kept(demo):
    response = Client().post(
        "/d/demo/join/", {"demo_political_affiliation": "Independent", "PROLIFIC_PID": "P1"}
    )
    assert response.status_code == 422
    text = response.content.decode()
    assert "Please tick the box" in text
    assert '<option value="Independent" selected>' in text
    assert 'value="P1"' in text
    assert not Participant.objects.exists()


def test_demographics_are_recorded(demo):
    ada = join(demo_political_affiliation="Republican")
    assert ada.participant.demographics == {"political_affiliation": "Republican"}
    assert ada.participant.consented_at is not None


def test_a_panel_link_is_recorded_and_the_same_panel_id_resumes_the_participant(demo):
    link = "?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x9"
    landing = Client().get(f"/d/demo/{link}").content.decode()
    assert 'value="abc123"' in landing  # carried through the consent form
    ada = join(PROLIFIC_PID="abc123", STUDY_ID="s1", SESSION_ID="x9")
    assert (ada.participant.panel_pid, ada.participant.panel_study_id) == ("abc123", "s1")
    # The same person opens the link again in another browser: same participant, no second one.
    other_browser = Client()
    response = other_browser.get(f"/d/demo/{link}")
    assert response.status_code == 302
    assert response["Location"] == "/d/demo/interview/"
    page = other_browser.get("/d/demo/interview/").content.decode()
    assert f"/ws/interview/{ada.interview.pk}/" in page
    assert Participant.objects.count() == 1


def test_an_invite_only_deliberation_needs_a_valid_invite(demo):
    Deliberation.objects.filter(pk=demo.pk).update(access=Deliberation.Access.INVITE)
    response = Client().post("/d/demo/join/", {"consent": "on"})
    assert response.status_code == 403
    assert "by invitation only" in response.content.decode()
    response = Client().post("/d/demo/join/", {"consent": "on", "invite": "wrong"})
    assert "not valid" in response.content.decode()
    invite = Invite.objects.create(deliberation=demo)
    ada = join(invite=invite.token)
    assert ada.participant.invite == invite
    again = join(invite=invite.token)  # the invitee on another device
    assert again.participant == ada.participant


def test_a_closed_deliberation_accepts_nobody_new(demo):
    Deliberation.objects.filter(pk=demo.pk).update(status=Deliberation.Status.CLOSED)
    response = Client().post("/d/demo/join/", {"consent": "on"})
    assert response.status_code == 403
    assert not Participant.objects.exists()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "Your message is empty."),
        ("   \x00\x07  ", "Your message is empty."),
        ("x" * 4001, "the limit is 4000"),
    ],
)
def test_bad_messages_get_a_clear_message_and_the_text_is_kept(demo, text, error):
    ada = join()
    response = ada.send_http(text)
    assert response.status_code == 422
    assert error in response.content.decode()
    if text.strip("\x00\x07 "):
        assert text in response.content.decode()
    assert not Message.objects.filter(role="participant").exists()


def test_control_characters_are_removed_and_html_is_stored_as_text(demo):
    ada = join()
    ada.send_http("I care <script>alert(1)</script>\x1b[31m about\u202e safety")
    stored = Message.objects.get(role="participant").content
    assert stored == "I care <script>alert(1)</script>[31m about safety"
    page = ada.page()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_participants_are_rate_limited_per_minute(demo, settings, monkeypatch):
    settings.MESSAGES_PER_MINUTE = 3
    # Within one window: a test that straddled a minute boundary would start a new one.
    monkeypatch.setattr("elicit.ratelimit.now", lambda: 1_800_000_030.0)
    ada = join()
    for answer in ["one answer", "two answers", "three answers"]:
        assert ada.send_http(answer).status_code == 302
    response = ada.send_http("four answers")
    assert response.status_code == 429
    assert "very fast" in response.content.decode()
    assert "four answers" in response.content.decode()


def test_one_participant_cannot_read_or_write_anothers_interview(demo):
    ada = join()
    bo = join()
    url = f"/d/demo/interview/{ada.interview.pk}/send/"
    assert bo.client.post(url, {"message": "hijack"}).status_code == 404
    assert bo.client.post(f"/d/demo/interview/{ada.interview.pk}/card/", {}).status_code == 404
    assert "hijack" not in ada.page()
    assert not Message.objects.filter(content="hijack").exists()

"""The path of every message in a live interview: saved, and its reply begun, in one short
transaction (bench/interviews.py measures what it costs the participant's first token)."""

import pytest
from django.utils import timezone

from elicit import services
from elicit.demo import seed_demo
from elicit.models import Interview, Message, Participant
from tests.elicit.helpers import join


@pytest.fixture
def interview(db, llm) -> Interview:
    seed_demo()
    join()
    return Interview.objects.select_related("question", "participant__deliberation").latest("pk")


def test_a_message_is_saved_and_its_reply_begun_in_a_handful_of_queries(
    interview, django_assert_max_num_queries
):
    # Lock the interview, read its messages, insert the message and its reply together: with
    # the transaction's own statements, five (the last-seen time is written once a minute).
    with django_assert_max_num_queries(5):
        message, created, prepared = services.take_message(
            interview=interview, text="What matters is that she decides.", client_id="c1"
        )
    assert created and message.role == Message.Role.PARTICIPANT
    assert prepared.message.seq == message.seq + 1
    assert prepared.message.status == Message.Status.STREAMING
    # The model sees the whole conversation, ending with the participant's words, fenced.
    assert "What matters is that she decides." in prepared.llm_messages[-1]["content"]
    assert prepared.llm_messages[-1]["role"] == "user"


def test_a_resent_message_is_stored_once_and_begins_no_second_reply(interview):
    first, _created, prepared = services.take_message(
        interview=interview, text="Honesty first.", client_id="same"
    )
    services.finish_reply(
        message_id=prepared.message.pk, content="Tell me more.", status="complete"
    )
    again, created_again, prepared_again = services.take_message(
        interview=interview, text="Honesty first.", client_id="same"
    )
    assert (again.pk, created_again, prepared_again) == (first.pk, False, None)
    assert interview.messages.filter(content="Honesty first.").count() == 1


def test_a_message_while_the_reply_is_being_written_is_refused_and_nothing_is_stored(interview):
    services.take_message(interview=interview, text="First thought.", client_id="a")
    with pytest.raises(services.MessageRejected, match="wait until the interviewer"):
        services.take_message(interview=interview, text="Second thought.", client_id="b")
    assert not interview.messages.filter(content="Second thought.").exists()


def test_a_reply_left_streaming_by_a_dead_server_is_cut_off_and_the_interview_goes_on(
    interview, settings
):
    _message, _created, prepared = services.take_message(
        interview=interview, text="First thought.", client_id="a"
    )
    long_ago = timezone.now() - timezone.timedelta(seconds=settings.STALE_REPLY_SECONDS + 60)
    Message.objects.filter(pk=prepared.message.pk).update(content="Half a rep", updated_at=long_ago)

    message, created, second = services.take_message(
        interview=interview, text="Are you there?", client_id="b"
    )

    abandoned = Message.objects.get(pk=prepared.message.pk)
    assert abandoned.status == Message.Status.PARTIAL
    assert abandoned.content == "Half a rep"
    assert created and message.seq == abandoned.seq + 1
    assert second.message.seq == message.seq + 1


def test_a_finished_interview_takes_no_more_messages(interview):
    Interview.objects.filter(pk=interview.pk).update(status=Interview.Status.COMPLETED)
    with pytest.raises(services.MessageRejected, match="finished"):
        services.take_message(interview=interview, text="One more thing.", client_id="z")
    assert not interview.messages.filter(content="One more thing.").exists()


def test_when_the_participant_was_last_seen_is_kept_to_the_minute(interview):
    participant = interview.participant
    joined = participant.last_seen_at
    services.take_message(interview=interview, text="First thought.", client_id="a")
    participant.refresh_from_db()
    assert participant.last_seen_at == joined  # seen when joining, seconds ago: not rewritten

    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=long_ago)
    interview.participant.last_seen_at = long_ago
    Message.objects.filter(status=Message.Status.STREAMING).update(status=Message.Status.COMPLETE)
    services.take_message(interview=interview, text="Second thought.", client_id="b")
    participant.refresh_from_db()
    assert participant.last_seen_at > long_ago + timezone.timedelta(minutes=4)

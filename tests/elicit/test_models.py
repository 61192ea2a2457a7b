"""What must never happen twice is refused by the database itself."""

import pytest

from elicit.models import Message, ModerationAction, ModerationFlag, SurveyResponse
from tests.factories import (
    DeliberationFactory,
    InterviewFactory,
    ParticipantFactory,
    QuestionFactory,
    refused,
)

pytestmark = pytest.mark.django_db


def test_a_panel_id_is_one_participant_per_deliberation():
    deliberation = DeliberationFactory()
    ParticipantFactory(deliberation=deliberation, panel_pid="PROLIFIC123")
    assert refused(lambda: ParticipantFactory(deliberation=deliberation, panel_pid="PROLIFIC123"))
    # ...but the same person may take part in another deliberation,
    ParticipantFactory(panel_pid="PROLIFIC123")
    # and participants without a panel id are not limited.
    ParticipantFactory(deliberation=deliberation)
    ParticipantFactory(deliberation=deliberation)


def test_one_interview_per_participant_and_question():
    interview = InterviewFactory()
    assert refused(
        lambda: InterviewFactory(participant=interview.participant, question=interview.question)
    )
    other_question = QuestionFactory(deliberation=interview.participant.deliberation)
    InterviewFactory(participant=interview.participant, question=other_question)


def test_message_positions_and_client_ids_are_unique_in_an_interview():
    interview = InterviewFactory()
    Message.objects.create(interview=interview, seq=0, role="interviewer", content="Hi")
    assert refused(lambda: Message.objects.create(interview=interview, seq=0, role="participant"))
    Message.objects.create(interview=interview, seq=1, role="participant", client_id="abc")
    assert refused(
        lambda: Message.objects.create(
            interview=interview, seq=2, role="participant", client_id="abc"
        )
    )
    # Messages without a client id (interviewer turns) are not limited.
    Message.objects.create(interview=interview, seq=3, role="interviewer")
    Message.objects.create(interview=interview, seq=4, role="interviewer")


def test_survey_answers_are_on_the_1_to_5_scale():
    participant = ParticipantFactory()
    assert refused(lambda: SurveyResponse.objects.create(participant=participant, graph_fair=6))
    SurveyResponse.objects.create(participant=participant, graph_fair=5)
    assert refused(lambda: SurveyResponse.objects.create(participant=participant, graph_fair=4))


def test_an_automatic_flag_is_raised_once_per_reason_but_each_participant_may_report():
    interview = InterviewFactory()
    message = Message.objects.create(interview=interview, seq=0, role="participant")
    deliberation = interview.participant.deliberation
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_model(Message)

    def flag(**kwargs):
        return ModerationFlag.objects.create(
            deliberation=deliberation, content_type=ct, object_id=message.pk, **kwargs
        )

    flag(source="automatic", reason="harassment")
    assert refused(lambda: flag(source="automatic", reason="harassment"))
    flag(source="automatic", reason="violence")
    reporter = ParticipantFactory(deliberation=deliberation)
    flag(source="report", reason="offensive", reporter=reporter)
    assert refused(lambda: flag(source="report", reason="nonsense", reporter=reporter))
    flag(
        source="report", reason="offensive", reporter=ParticipantFactory(deliberation=deliberation)
    )


def test_the_audit_log_is_append_only():
    action = ModerationAction.objects.create(action="hide", target_repr="card 1", reason="spam")
    action.reason = "something else"
    with pytest.raises(ValueError, match="append-only"):
        action.save()
    with pytest.raises(ValueError, match="append-only"):
        action.delete()
    assert ModerationAction.objects.get().reason == "spam"

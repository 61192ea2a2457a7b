"""One person, one participant: a panel id or an invite token brings back the participant who
first used it, from any browser, and never makes a second one."""

import pytest

from elicit.demo import seed_demo
from elicit.models import Deliberation, Invite, Participant
from tests.elicit.helpers import join

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(transactional_db, no_llm):
    return seed_demo()[0]


def test_joining_again_with_the_same_panel_id_resumes_the_first_participant(demo):
    ada = join(PROLIFIC_PID="P-ADA", demo_political_affiliation="Democrat")
    # Another browser skips the link's redirect and posts the consent form itself, with other
    # answers: still the same participant, whose first answers stand.
    again = join(PROLIFIC_PID="P-ADA", demo_political_affiliation="Republican")
    assert again.participant == ada.participant
    assert again.interview == ada.interview
    assert Participant.objects.count() == 1
    assert Participant.objects.get().demographics == {"political_affiliation": "Democrat"}


def test_the_generic_pid_and_prolifics_pid_are_the_same_panel_id(demo):
    ada = join(pid="P-ADA")
    assert join(PROLIFIC_PID="P-ADA").participant == ada.participant
    assert Participant.objects.count() == 1


def test_a_panel_id_is_per_deliberation(demo):
    other = Deliberation.objects.create(slug="other", title="Other", status="open")
    other.questions.create(slug="q", text="What should it do?")
    ada = join(PROLIFIC_PID="P-ADA")
    elsewhere = join("other", PROLIFIC_PID="P-ADA")
    assert elsewhere.participant != ada.participant
    assert Participant.objects.filter(panel_pid="P-ADA").count() == 2


def test_an_invite_used_twice_does_not_make_a_second_participant(demo):
    Deliberation.objects.filter(pk=demo.pk).update(access=Deliberation.Access.INVITE)
    invite = Invite.objects.create(deliberation=demo)
    ada = join(invite=invite.token)
    forwarded = join(invite=invite.token)  # the link passed on, or the invitee's phone
    assert forwarded.participant == ada.participant
    assert Participant.objects.count() == 1
    # Nor does the same invite with a panel id of its own.
    assert join(invite=invite.token, PROLIFIC_PID="P-OTHER").participant == ada.participant
    assert Participant.objects.count() == 1

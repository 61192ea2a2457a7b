"""A participant ("Ada") reports a value or story she was shown as offensive or nonsense; the
report lands in the moderators' queue, once, and reports are rate-limited."""

import pytest

from elicit.models import ModerationFlag
from graph import participation
from tests.factories import CanonicalValueFactory, HypothesisFactory
from tests.graph.test_participation import VOTE, ada, demo, page, question, value_for  # noqa: F401

pytestmark = pytest.mark.django_db

REPORT = "/d/demo/report/"


@pytest.fixture
def shown(ada):  # noqa: F811 - the fixture imported above
    """Ada's vote shows two values of other participants."""
    values = [value_for(question("abortion"), title) for title in ("Care first", "Faith counts")]
    ada.client.get(VOTE)
    return values


def test_each_value_in_the_vote_has_report_buttons_that_file_a_report(ada, shown):  # noqa: F811
    html = page(ada.client.get(VOTE))
    value = shown[0]
    assert f'value="value:{value.pk}:offensive"' in html and 'form="report-form"' in html
    response = ada.client.post(
        REPORT, {"report": f"value:{value.pk}:offensive", "next": VOTE}, follow=True
    )
    assert response.redirect_chain[-1][0] == VOTE
    assert "Thank you: a moderator will look at it." in page(response)
    flag = ModerationFlag.objects.get()
    assert (flag.target, flag.source, flag.reason) == (value, "report", "offensive")
    assert flag.reporter == ada.participant


def test_reporting_the_same_value_twice_files_one_report(ada, shown):  # noqa: F811
    choice = {"report": f"value:{shown[0].pk}:nonsense", "next": VOTE}
    ada.client.post(REPORT, choice)
    response = ada.client.post(REPORT, choice, follow=True)
    assert "You had already reported this" in page(response)
    assert ModerationFlag.objects.count() == 1


def test_a_value_never_shown_to_the_participant_cannot_be_reported(ada, shown):  # noqa: F811
    unseen = CanonicalValueFactory(deliberation=ada.participant.deliberation)
    response = ada.client.post(REPORT, {"report": f"value:{unseen.pk}:offensive"}, follow=True)
    assert "There is nothing to report there." in page(response)
    response = ada.client.post(REPORT, {"report": "value:x:offensive"}, follow=True)
    assert "There is nothing to report there." in page(response)
    assert not ModerationFlag.objects.exists()


def test_a_reason_other_than_those_offered_is_refused(ada, shown):  # noqa: F811
    response = ada.client.post(REPORT, {"report": f"value:{shown[0].pk}:boring"}, follow=True)
    assert "Please choose why you report it." in page(response)
    assert not ModerationFlag.objects.exists()


def test_a_story_shown_can_be_reported(ada, demo):  # noqa: F811
    a = value_for(question("abortion"), "Care first")
    b = value_for(question("abortion"), "Faith counts")
    context = question("abortion").contexts.first()
    hypothesis = HypothesisFactory(deliberation=demo, context=context, from_value=a, to_value=b)
    html = page(ada.client.get("/d/demo/judge/"))
    assert f'value="story:{hypothesis.pk}:nonsense"' in html
    ada.client.post(REPORT, {"report": f"story:{hypothesis.pk}:nonsense"})
    assert ModerationFlag.objects.get().target == hypothesis


def test_reports_are_rate_limited(ada, shown, settings):  # noqa: F811
    settings.REPORTS_PER_HOUR = 1
    ada.client.post(REPORT, {"report": f"value:{shown[0].pk}:offensive"})
    response = ada.client.post(REPORT, {"report": f"value:{shown[1].pk}:offensive"}, follow=True)
    assert "You have sent many reports" in page(response)
    assert ModerationFlag.objects.count() == 1


def test_someone_who_has_not_joined_cannot_report(demo, client):  # noqa: F811
    value = CanonicalValueFactory(deliberation=demo)
    response = client.post(REPORT, {"report": f"value:{value.pk}:offensive"})
    assert response.status_code == 302 and not ModerationFlag.objects.exists()


def test_a_reported_value_is_still_shown_until_a_moderator_acts(ada, shown):  # noqa: F811
    ada.client.post(REPORT, {"report": f"value:{shown[0].pk}:offensive"})
    assert shown[0] in participation.shown_values(ada.participant.deliberation)


def test_in_strict_mode_the_vote_page_shows_a_value_only_once_a_moderator_approved_it(
    ada,  # noqa: F811
    demo,  # noqa: F811
):
    from elicit.models import Deliberation, ValuesCard
    from graph.moderation import services
    from tests.factories import UserFactory

    Deliberation.objects.filter(pk=demo.pk).update(
        moderation_mode=Deliberation.ModerationMode.STRICT
    )
    approved = [value_for(question("abortion"), t) for t in ("Care first", "Faith counts")]
    pending = value_for(question("abortion"), "Waiting for a moderator")
    ValuesCard.objects.filter(canonical=pending).update(approval=ValuesCard.Approval.PENDING)
    html = page(ada.client.get(VOTE))
    assert "Care first" in html and "Faith counts" in html
    assert "Waiting for a moderator" not in html
    root = UserFactory(username="root", is_superuser=True)
    services.approve(actor=root, target=ValuesCard.objects.get(canonical=pending))
    assert pending in participation.shown_values(ada.participant.deliberation)
    assert approved[0] in participation.shown_values(ada.participant.deliberation)

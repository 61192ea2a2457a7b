"""The end of the journey, as a participant ("Ada") notices it: where her value sits in the
graph, the legitimacy survey, the completion code or the way back to her panel, and her
personal link that shows the result later without leaking who she is."""

import re

import pytest
from django.test import Client
from django.utils import timezone

from elicit.models import Participant, SurveyResponse
from elicit.services import SESSION_KEY
from graph import results
from tests.factories import JudgmentFactory
from tests.graph.scored import scored_deliberation

pytestmark = pytest.mark.django_db

SURVEY = {
    "felt_represented": "4",
    "graph_fair": "5",
    "clarified_thinking": "3",
    "trust_process": "4",
    "comment": "  Interesting stories.  ",
}


def session_of(participant: Participant) -> Client:
    client = Client()
    session = client.session
    session[SESSION_KEY] = {str(participant.deliberation_id): participant.pk}
    session.save()
    return client


def finish(scored, participant: Participant) -> None:
    """She judges the one story she may see (the others are about her own value)."""
    JudgmentFactory(hypothesis=scored.stories["history>facts"], participant=participant)


@pytest.fixture
def scored():
    return scored_deliberation(completion_code="C0DE-4711")


@pytest.fixture
def ada(scored):
    """Ada wrote "Care without judgment"; she came through a panel and gave demographics."""
    participant = scored.authors["care"]
    Participant.objects.filter(pk=participant.pk).update(
        panel_pid="PROLIFIC-ADA-123", demographics={"party": "Independent-Green"}
    )
    participant.refresh_from_db()
    finish(scored, participant)
    return participant


def done_url(scored) -> str:
    return f"/d/{scored.deliberation.slug}/done/"


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_at_the_end_she_sees_where_her_value_sits_and_the_upgrades_it_gained_and_lost(scored, ada):
    html = text(session_of(ada).get(done_url(scored)))
    assert "Thank you for taking part" in html
    assert "Where your value sits" in html
    distress = html.split(scored.distress.text, 1)[1].split("</div>", 1)[0]
    rank = results.context_scores(scored.run.results)[scored.distress.pk].rank(
        scored.values["care"].pk
    )
    assert f"Your value ranks {rank} of 3 here." in distress
    gained, lost = distress.split("Upgrades it gained", 1)[1].split("Upgrades it lost", 1)
    assert "Plain facts first" in gained and "3 of 4 votes" in gained
    assert "Trusting her to decide" in lost and "3 of 3 votes" in lost
    assert "Judged wisest here: “Trusting her to decide”" in distress
    # Nothing was judged in the shared context: every value ties there, and she is not told
    # that hers is among the wisest.
    shared = html.split(scored.shared.text, 1)[1].split("</div>", 1)[0]
    assert "has not been compared with others in this context yet" in shared
    assert "among the wisest" not in shared
    assert 'class="node mine"' in html  # her value outlined in the drawing
    assert "C0DE-4711" not in html  # the code comes after the survey


def test_a_survey_with_a_missing_or_impossible_answer_comes_back_with_what_she_chose(scored, ada):
    client = session_of(ada)
    response = client.post(done_url(scored), {**SURVEY, "graph_fair": "7", "trust_process": ""})
    assert response.status_code == 422
    html = text(response)
    assert "Please choose one of the five answers." in html
    assert "Please choose one answer on this line." in html
    assert re.search(r'name="felt_represented" value="4"[^>]* checked', html)
    assert re.search(r'name="clarified_thinking" value="3"[^>]* checked', html)
    assert "Interesting stories." in html
    assert not SurveyResponse.objects.exists()
    ada.refresh_from_db()
    assert ada.completed_at is None


def test_her_answers_are_stored_and_she_gets_the_completion_code_once(scored, ada):
    client = session_of(ada)
    response = client.post(done_url(scored), SURVEY)
    assert (response.status_code, response["Location"]) == (302, done_url(scored))
    survey = SurveyResponse.objects.get(participant=ada)
    assert (survey.felt_represented, survey.graph_fair) == (4, 5)
    assert (survey.clarified_thinking, survey.trust_process) == (3, 4)
    assert survey.comment == "Interesting stories."
    ada.refresh_from_db()
    completed = ada.completed_at
    assert completed is not None
    html = text(client.get(done_url(scored)))
    assert "C0DE-4711" in html
    assert "Thank you for answering the survey." in html
    assert 'name="felt_represented"' not in html
    client.post(done_url(scored), {**SURVEY, "graph_fair": "2"})
    ada.refresh_from_db()
    assert ada.completed_at == completed


def test_she_may_skip_the_survey_and_still_complete(scored, ada):
    client = session_of(ada)
    response = client.post(done_url(scored), {"skip": "1", "graph_fair": "9"})
    assert response.status_code == 302
    assert not SurveyResponse.objects.exists()
    assert "C0DE-4711" in text(client.get(done_url(scored)))


def test_a_panel_participant_goes_back_to_the_panel_when_done(scored, ada):
    scored.deliberation.completion_redirect_url = (
        "https://app.prolific.com/submissions/complete?cc=X"
    )
    scored.deliberation.save()
    response = session_of(ada).post(done_url(scored), SURVEY)
    assert response["Location"] == "https://app.prolific.com/submissions/complete?cc=X"
    ada.refresh_from_db()
    assert ada.completed_at is not None


def test_someone_who_has_not_finished_gets_no_code_and_cannot_complete(scored):
    bo = scored.authors["facts"]  # has stories left to judge
    client = session_of(bo)
    html = text(client.get(done_url(scored)))
    assert "You are not finished yet" in html
    assert "C0DE-4711" not in html
    client.post(done_url(scored), {"skip": "1"})
    bo.refresh_from_db()
    assert bo.completed_at is None


def test_the_personal_link_shows_her_result_without_the_session_and_nothing_identifying(
    scored, ada
):
    session_of(ada).post(done_url(scored), SURVEY)
    done_html = text(session_of(ada).get(done_url(scored)))
    link = re.search(r'href="(http://testserver/r/[^"]+/)"', done_html).group(1)
    stranger = Client()
    response = stranger.get(link.removeprefix("http://testserver"))
    assert response.status_code == 200
    html = text(response)
    assert "Care without judgment" in html
    assert "Upgrades it gained" in html
    for secret in ("PROLIFIC-ADA-123", "Independent-Green", "C0DE-4711", "Interesting stories"):
        assert secret not in html
    assert str(ada.public_id) not in html
    assert f'href="/r/{ada.receipt_token}/my-data/"' in html  # her data, by the same key
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"]
    # The link logs nobody in: the stranger cannot continue as Ada.
    assert stranger.get(done_url(scored))["Location"] == f"/d/{scored.deliberation.slug}/"


def test_a_wrong_or_erased_link_is_404(scored, ada):
    assert Client().get("/r/not-a-token/").status_code == 404
    Participant.objects.filter(pk=ada.pk).update(erased_at=timezone.now())
    assert Client().get(f"/r/{ada.receipt_token}/").status_code == 404


def test_a_value_hidden_by_a_moderator_is_not_shown_to_participants(scored, ada):
    autonomy = scored.values["autonomy"]
    autonomy.hidden_at = timezone.now()
    autonomy.save()
    html = text(Client().get(f"/r/{ada.receipt_token}/"))
    assert "Care without judgment" in html
    assert "Trusting her to decide" not in html


def test_before_any_scoring_run_she_is_told_to_come_back_later():
    scored = scored_deliberation(run=False)
    ada = scored.authors["care"]
    finish(scored, ada)
    html = text(session_of(ada).get(done_url(scored)))
    assert "The graph has not been computed yet" in html
    assert "/r/" + ada.receipt_token in html


def test_completing_twice_sets_the_time_once(scored, ada):
    assert results.complete(participant=ada) is True
    first = ada.completed_at
    assert results.complete(participant=ada) is False
    assert ada.completed_at == first

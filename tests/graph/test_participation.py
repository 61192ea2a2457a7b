"""After the card: the wisest-values vote, the upgrade stories, and the end page, as a
participant ("Ada", with "Bo" as another participant) notices them in the browser."""

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from elicit.demo import seed_demo
from elicit.models import Context, Deliberation, Interview, Question, ValuesCard
from graph import participation
from graph.models import JudgmentRevision, UpgradeJudgment, WisestVote
from tests.elicit.helpers import join
from tests.factories import (
    CanonicalValueFactory,
    HypothesisFactory,
    ParticipantFactory,
    ValuesCardFactory,
)

pytestmark = pytest.mark.django_db

VOTE, JUDGE, DONE, JUDGMENTS = (
    "/d/demo/vote/",
    "/d/demo/judge/",
    "/d/demo/done/",
    "/d/demo/judgments/",
)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def demo(no_llm) -> Deliberation:
    return seed_demo()[0]


@pytest.fixture
def ada(demo):
    """Ada joined and confirmed her card on the first question; it became a value of its own."""
    browser = join()
    interview = browser.interview
    card = ValuesCardFactory(
        deliberation=demo,
        participant=browser.participant,
        question=interview.question,
        interview=interview,
        title="Support without judgment",
    )
    card.canonical = CanonicalValueFactory(deliberation=demo, title=card.title, representative=card)
    card.save()
    Interview.objects.filter(pk=interview.pk).update(status=Interview.Status.COMPLETED)
    browser.card = card
    return browser


def value_for(question: Question, title: str):
    """Another participant's value, written for the question."""
    card = ValuesCardFactory(
        deliberation=question.deliberation,
        participant=ParticipantFactory(deliberation=question.deliberation),
        question=question,
        title=title,
    )
    card.canonical = CanonicalValueFactory(deliberation=question.deliberation, title=title)
    card.save()
    return card.canonical


def question(slug: str) -> Question:
    return Question.objects.get(deliberation__slug="demo", slug=slug)


def page(response) -> str:
    return response.content.decode()


def shown_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'name="value" value="(\d+)"', html)}


def checked_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'name="value" value="(\d+)" checked', html)}


# --- Wisest values ------------------------------------------------------------------------------


def test_the_vote_shows_six_values_of_her_question_but_never_her_own(ada):
    abortion = question("abortion")
    assert ada.interview.question == abortion
    for n in range(8):
        value_for(abortion, f"Abortion value {n}")
    weapons = value_for(question("weapons"), "Precise weapon facts")
    html = page(ada.client.get(VOTE))
    assert len(shown_ids(html)) == 6
    assert "Abortion value" in html
    assert ada.card.canonical.pk not in shown_ids(html)
    assert weapons.pk not in shown_ids(html)
    vote = WisestVote.objects.get(participant=ada.participant)
    assert set(vote.shown.values_list("pk", flat=True)) == shown_ids(html)
    assert vote.answered_at is None


def test_a_value_she_said_was_hers_is_not_offered_either(ada):
    abortion = question("abortion")
    joined = value_for(abortion, "Listening first")
    others = [value_for(abortion, f"Other {n}") for n in range(2)]
    ValuesCard.objects.filter(pk=ada.card.pk).update(chosen_canonical=joined)
    html = page(ada.client.get(VOTE))
    assert shown_ids(html) == {v.pk for v in others}


def test_her_vote_is_reloaded_and_stored_without_reading_her_again(
    ada, django_assert_max_num_queries
):
    """The vote read back on a reload or an answer knows its participant and question: they
    are not read again, nor is their deliberation."""
    for n in range(8):
        value_for(question("abortion"), f"Abortion value {n}")
    ada.client.get(VOTE)
    with django_assert_max_num_queries(11):
        html = page(ada.client.get(VOTE))
    chosen = min(shown_ids(html))
    with django_assert_max_num_queries(19):
        response = ada.client.post(VOTE, {"value": [str(chosen)]})
    assert response["Location"] == JUDGE
    vote = WisestVote.objects.get(participant=ada.participant)
    assert set(vote.chosen.values_list("pk", flat=True)) == {chosen}


def test_the_vote_needs_at_least_one_choice(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(3)]
    ada.client.get(VOTE)
    response = ada.client.post(VOTE, {})
    assert response.status_code == 422
    assert "Please choose at least one value." in page(response)
    assert shown_ids(page(response)) == {v.pk for v in values}
    assert WisestVote.objects.get().answered_at is None


def test_a_refused_vote_keeps_what_she_ticked(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(3)]
    elsewhere = value_for(question("weapons"), "Not shown to her")
    ada.client.get(VOTE)
    response = ada.client.post(VOTE, {"value": [values[1].pk, elsewhere.pk]})
    assert response.status_code == 422
    assert checked_ids(page(response)) == {values[1].pk}
    assert not WisestVote.objects.get().chosen.exists()


def test_her_choice_is_stored_with_what_she_was_shown_and_she_moves_on_to_the_stories(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(4)]
    ada.client.get(VOTE)
    response = ada.client.post(VOTE, {"value": [values[0].pk, values[2].pk]})
    assert (response.status_code, response["Location"]) == (302, JUDGE)
    vote = WisestVote.objects.get(participant=ada.participant, question=question("abortion"))
    assert set(vote.chosen.all()) == {values[0], values[2]}
    assert set(vote.shown.all()) == set(values)
    assert vote.answered_at is not None


def test_coming_back_to_the_vote_shows_her_answer_and_lets_her_change_it(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(3)]
    ada.client.get(VOTE)
    ada.client.post(VOTE, {"value": [values[0].pk]})
    first_answer = WisestVote.objects.get().answered_at
    html = page(ada.client.get(VOTE))
    assert checked_ids(html) == {values[0].pk}
    assert "You already answered" in html
    ada.client.post(VOTE, {"value": [values[1].pk, values[2].pk]})
    vote = WisestVote.objects.get()
    assert set(vote.chosen.all()) == {values[1], values[2]}
    assert vote.answered_at == first_answer
    assert WisestVote.objects.count() == 1


def test_every_answer_to_the_vote_is_kept_in_its_history_in_order(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(3)]
    ada.client.get(VOTE)
    ada.client.post(VOTE, {"value": [values[0].pk]})
    ada.client.post(VOTE, {"value": [values[0].pk]})  # the same form sent twice
    ada.client.post(VOTE, {"value": [values[2].pk, values[1].pk]})
    vote = WisestVote.objects.get()
    history = participation.vote_history(vote)
    assert [set(r.chosen.all()) for r in history] == [{values[0]}, {values[1], values[2]}]
    assert [t["title"] for t in history[1].chosen_titles] == ["Value 1", "Value 2"]
    assert history[0].created_at <= history[1].created_at
    # The history reads the same after a value is reworded.
    values[0].title = "Reworded"
    values[0].save()
    first = participation.vote_history(vote)[0]
    assert first.chosen_titles == [{"id": values[0].pk, "title": "Value 0"}]


def test_a_refused_vote_leaves_the_history_alone(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(3)]
    ada.client.get(VOTE)
    ada.client.post(VOTE, {"value": [values[0].pk]})
    assert ada.client.post(VOTE, {"value": []}).status_code == 422
    vote = WisestVote.objects.get()
    assert [set(r.chosen.all()) for r in participation.vote_history(vote)] == [{values[0]}]
    assert set(vote.chosen.all()) == {values[0]}


def test_a_reload_shows_the_same_values_even_when_more_arrive(ada):
    abortion = question("abortion")
    for n in range(6):
        value_for(abortion, f"Value {n}")
    before = shown_ids(page(ada.client.get(VOTE)))
    for n in range(4):
        value_for(abortion, f"Later value {n}")
    assert shown_ids(page(ada.client.get(VOTE))) == before


def test_with_fewer_than_two_values_the_vote_is_skipped(ada):
    value_for(question("abortion"), "The only other value")
    response = ada.client.get(VOTE)
    assert (response.status_code, response["Location"]) == (302, JUDGE)
    assert not WisestVote.objects.exists()


def test_an_htmx_vote_gets_only_the_form_back_and_a_full_page_load_when_done(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(2)]
    response = ada.client.post(VOTE, {}, **HTMX)
    assert response.status_code == 422
    assert page(response).lstrip().startswith('<section id="vote-step">')
    assert "<html" not in page(response)
    response = ada.client.post(VOTE, {"value": [values[0].pk]}, **HTMX)
    assert response["HX-Redirect"] == JUDGE


# --- Upgrade judgments --------------------------------------------------------------------------


def context(text: str) -> Context:
    return Context.objects.get(deliberation__slug="demo", text=text)


DISTRESS = "When the person is in distress"
FAITH = "When the person's faith is part of the decision"
VIOLENCE = "When facts about violence are requested"


def hypothesis(where: str, a=None, b=None, **fields):
    demo = Deliberation.objects.get(slug="demo")
    return HypothesisFactory(
        deliberation=demo,
        context=context(where),
        from_value=a or CanonicalValueFactory(deliberation=demo),
        to_value=b or CanonicalValueFactory(deliberation=demo),
        **fields,
    )


def answered_by_others(hypothesis_, count: int, verdict="upgrade"):
    for _ in range(count):
        UpgradeJudgment.objects.create(
            participant=ParticipantFactory(deliberation=hypothesis_.deliberation),
            hypothesis=hypothesis_,
            context=hypothesis_.context,
            pair_key=hypothesis_.pair_key,
            verdict=verdict,
        )


def current_story(browser) -> UpgradeJudgment:
    html = page(browser.client.get(JUDGE))
    pk = int(re.search(r'name="judgment" value="(\d+)"', html).group(1))
    return UpgradeJudgment.objects.get(pk=pk)


def answer(browser, verdict="upgrade", comment=""):
    judgment = current_story(browser)
    response = browser.client.post(
        JUDGE, {"judgment": judgment.pk, "verdict": verdict, "comment": comment}
    )
    assert response.status_code == 302, page(response)
    return judgment


def judge_all(browser) -> list[UpgradeJudgment]:
    judged = []
    while (response := browser.client.get(JUDGE)).status_code == 200:
        judged.append(answer(browser))
        assert len(judged) < 20
    assert response["Location"] == DONE
    return judged


def test_she_judges_as_many_stories_as_the_deliberation_asks_then_reaches_the_end(ada, demo):
    demo.judgments_per_participant = 3
    demo.save()
    for _ in range(5):
        hypothesis(DISTRESS)
    judged = judge_all(ada)
    assert len(judged) == 3
    assert all(j.verdict == "" for j in judged)  # as they were when shown
    assert UpgradeJudgment.objects.filter(participant=ada.participant).count() == 3
    html = page(ada.client.get(DONE))
    assert "Thank you for taking part" in html
    assert "Support without judgment" in html


def story_counter(browser) -> str:
    return re.search(r"Story \d+ of \d+", page(browser.client.get(JUDGE))).group(0)


def test_the_counter_counts_the_stories_she_will_be_shown_when_fewer_are_left(ada, demo):
    demo.judgments_per_participant = 4
    demo.save()
    a, b = (CanonicalValueFactory(deliberation=demo) for _ in range(2))
    hypothesis(DISTRESS, a, b)
    hypothesis(DISTRESS, b, a, is_control=True)  # the same pair: she sees only one of them
    hypothesis(FAITH)
    hypothesis(VIOLENCE)
    assert story_counter(ada) == "Story 1 of 3"
    answer(ada)
    assert story_counter(ada) == "Story 2 of 3"
    answer(ada)
    assert story_counter(ada) == "Story 3 of 3"
    answer(ada)
    assert ada.client.get(JUDGE)["Location"] == DONE


def test_the_counter_stops_at_what_the_deliberation_asks_for(ada, demo):
    demo.judgments_per_participant = 2
    demo.save()
    for _ in range(4):
        hypothesis(DISTRESS)
    assert story_counter(ada) == "Story 1 of 2"
    answer(ada)
    assert story_counter(ada) == "Story 2 of 2"


def test_a_story_shown_is_recorded_before_she_answers_and_a_reload_shows_it_again(ada):
    hypothesis(DISTRESS)
    hypothesis(DISTRESS)
    shown = current_story(ada)
    assert (shown.verdict, shown.answered_at) == ("", None)
    assert shown.shown_at is not None
    assert current_story(ada) == shown
    assert UpgradeJudgment.objects.count() == 1
    answer(ada, "not_upgrade", "  It loses the warmth.  ")
    shown.refresh_from_db()
    assert (shown.verdict, shown.comment) == ("not_upgrade", "It loses the warmth.")
    assert shown.answered_at >= shown.shown_at
    assert list(shown.revisions.values_list("verdict", flat=True)) == ["not_upgrade"]


def test_she_never_sees_the_same_pair_twice_not_even_its_reverse_control(ada):
    forward = hypothesis(DISTRESS)
    hypothesis(DISTRESS, forward.to_value, forward.from_value, is_control=True)
    other = hypothesis(DISTRESS)
    judged = judge_all(ada)
    assert len(judged) == 2  # she would judge 4, but only two pairs exist
    assert {j.pair_key for j in judged} == {forward.pair_key, other.pair_key}


def test_a_pair_she_judged_in_one_situation_is_not_shown_again_in_another(ada):
    first = hypothesis(DISTRESS)
    hypothesis(FAITH, first.from_value, first.to_value)
    assert len(judge_all(ada)) == 1


def test_stories_with_fewer_answers_come_first_so_that_evidence_spreads(ada):
    well_judged = hypothesis(DISTRESS)
    answered_by_others(well_judged, 3)
    half_judged = hypothesis(DISTRESS)
    answered_by_others(half_judged, 1)
    # The reverse of a pair counts for the pair: this one has 2 answers through its control.
    reverse_judged = hypothesis(DISTRESS)
    answered_by_others(hypothesis(DISTRESS, reverse_judged.to_value, reverse_judged.from_value), 2)
    unjudged = hypothesis(DISTRESS)
    unanswered_only = hypothesis(DISTRESS)  # shown to Bo, not answered: no evidence yet
    UpgradeJudgment.objects.create(
        participant=ParticipantFactory(deliberation=unanswered_only.deliberation),
        hypothesis=unanswered_only,
        context=unanswered_only.context,
        pair_key=unanswered_only.pair_key,
    )
    order = [j.hypothesis for j in judge_all(ada)]
    assert set(order[:2]) == {unjudged, unanswered_only}
    assert order[2:] == [half_judged, reverse_judged]


def test_the_answer_counts_serve_the_stories_drawn_within_a_few_seconds(ada, settings):
    """Counting answers reads every judgment of the deliberation (about 90 ms of PostgreSQL at
    180,000), so the counts are kept ROUTING_COUNTS_SECONDS for the next stories drawn."""
    settings.ROUTING_COUNTS_SECONDS = 5
    busy, quiet = hypothesis(DISTRESS), hypothesis(DISTRESS)
    answered_by_others(busy, 2)
    assert participation.routing_order(ada.participant)[0] == quiet
    answered_by_others(quiet, 3)  # within the seconds kept: not counted yet
    assert participation.routing_order(ada.participant)[0] == quiet
    cache.clear()  # the seconds have passed
    assert participation.routing_order(ada.participant)[0] == busy


def test_with_no_seconds_kept_every_story_drawn_counts_the_answers_afresh(ada, settings):
    settings.ROUTING_COUNTS_SECONDS = 0
    busy, quiet = hypothesis(DISTRESS), hypothesis(DISTRESS)
    answered_by_others(busy, 2)
    assert participation.routing_order(ada.participant)[0] == quiet
    answered_by_others(quiet, 3)
    assert participation.routing_order(ada.participant)[0] == busy


def test_stories_about_her_own_question_come_before_other_questions(ada):
    other_question = hypothesis(VIOLENCE)
    hers = hypothesis(DISTRESS)
    answered_by_others(hers, 2)
    assert [j.hypothesis for j in judge_all(ada)] == [hers, other_question]


def test_ties_are_broken_at_random_but_the_same_way_on_every_reload(ada):
    for _ in range(6):
        hypothesis(DISTRESS)
    first = participation.routing_order(ada.participant)
    assert participation.routing_order(ada.participant) == first
    bo = join()
    assert participation.routing_order(bo.participant) != first  # 1 in 720 to fail by chance


def test_stories_about_her_own_value_and_hidden_stories_are_not_shown(ada, demo):
    mine = ada.card.canonical
    hypothesis(DISTRESS, mine, None)
    hypothesis(DISTRESS, None, mine)
    hypothesis(DISTRESS, hidden_at=timezone.now())
    hidden_value = CanonicalValueFactory(deliberation=demo, hidden_at=timezone.now())
    hypothesis(DISTRESS, hidden_value, None)
    shown = hypothesis(DISTRESS)
    assert [j.hypothesis for j in judge_all(ada)] == [shown]


def test_a_pair_drawn_at_the_same_moment_by_her_other_tab_does_not_crash(ada, monkeypatch):
    taken = hypothesis(DISTRESS)
    free = hypothesis(DISTRESS)
    UpgradeJudgment.objects.create(
        participant=ada.participant,
        hypothesis=taken,
        context=taken.context,
        pair_key=taken.pair_key,
        verdict="upgrade",
    )
    # As if the routing had read the database just before the other tab wrote to it.
    monkeypatch.setattr(participation, "routing_order", lambda participant, own=None: [taken, free])
    assert participation.next_judgment(participant=ada.participant).hypothesis == free


def test_without_a_language_model_she_sees_the_two_cards_and_the_situation(ada):
    pair = hypothesis(DISTRESS, story="")
    html = page(ada.client.get(JUDGE))
    assert "No story was written for this pair" in html
    assert "Card A" in html and "Card B" in html
    assert DISTRESS in html.replace("&#x27;", "'")
    assert pair.from_value.title in html and pair.to_value.title in html
    assert pair.from_value.policies[0] in html


def test_a_story_when_there_is_one_is_shown_with_both_cards(ada):
    pair = hypothesis(DISTRESS, story="She stopped lecturing and started listening.")
    html = page(ada.client.get(JUDGE))
    assert "She stopped lecturing and started listening." in html
    assert "No story was written" not in html
    assert pair.to_value.title in html


def test_an_answer_needs_a_verdict_and_a_short_enough_comment_and_keeps_her_input(ada):
    hypothesis(DISTRESS)
    judgment = current_story(ada)
    response = ada.client.post(JUDGE, {"judgment": judgment.pk, "comment": "Because."})
    assert response.status_code == 422
    assert "Please say whether this person became wiser" in page(response)
    assert "Because." in page(response)
    long = "x" * 2001
    response = ada.client.post(
        JUDGE, {"judgment": judgment.pk, "verdict": "unsure", "comment": long}
    )
    assert response.status_code == 422
    assert long in page(response)
    assert 'value="unsure" checked' in page(response)
    judgment.refresh_from_db()
    assert judgment.verdict == ""
    assert not JudgmentRevision.objects.exists()


def test_revising_an_answer_keeps_the_history_and_the_judgment_holds_the_latest(ada):
    hypothesis(DISTRESS)
    judgment = answer(ada, "upgrade", "More caring.")
    judgment.refresh_from_db()
    first_answer = judgment.answered_at
    listing = page(ada.client.get(JUDGMENTS))
    revise_url = f"/d/demo/judgments/{judgment.pk}/"
    assert revise_url in listing
    assert 'value="upgrade" checked' in page(ada.client.get(revise_url))
    response = ada.client.post(
        revise_url, {"judgment": judgment.pk, "verdict": "not_upgrade", "comment": "On reflection."}
    )
    assert (response.status_code, response["Location"]) == (302, JUDGMENTS)
    judgment.refresh_from_db()
    assert (judgment.verdict, judgment.comment) == ("not_upgrade", "On reflection.")
    assert judgment.answered_at == first_answer
    history = list(judgment.revisions.values_list("verdict", "comment"))
    assert history == [("upgrade", "More caring."), ("not_upgrade", "On reflection.")]
    assert "More caring." in page(ada.client.get(revise_url))


def test_sending_the_same_answer_twice_stores_it_once(ada):
    hypothesis(DISTRESS)
    judgment = answer(ada, "unsure")
    ada.client.post(f"/d/demo/judgments/{judgment.pk}/", {"verdict": "unsure"})
    assert judgment.revisions.count() == 1


def test_the_whole_step_works_with_plain_posts_and_no_javascript(ada):
    values = [value_for(question("abortion"), f"Value {n}") for n in range(2)]
    hypothesis(DISTRESS)
    response = ada.client.post(VOTE, {"value": [values[0].pk]})
    assert response["Location"] == JUDGE
    judgment = current_story(ada)
    response = ada.client.post(JUDGE, {"judgment": judgment.pk, "verdict": "upgrade"})
    assert (response.status_code, response["Location"]) == (302, JUDGE)
    assert ada.client.get(JUDGE)["Location"] == DONE


def test_an_htmx_answer_gets_only_the_next_story_and_then_a_full_page_load_of_the_end(ada, demo):
    demo.judgments_per_participant = 2
    demo.save()
    hypothesis(DISTRESS)
    hypothesis(DISTRESS)
    response = ada.client.get(JUDGE, **HTMX)
    html = page(response)
    assert html.lstrip().startswith('<section id="judge-step">')
    assert "<html" not in html and "site-footer" not in html
    first = int(re.search(r'name="judgment" value="(\d+)"', html).group(1))
    response = ada.client.post(JUDGE, {"judgment": first, "verdict": "upgrade"}, **HTMX)
    html = page(response)
    assert response.status_code == 200 and "<html" not in html
    second = int(re.search(r'name="judgment" value="(\d+)"', html).group(1))
    assert second != first
    assert "Story 2 of 2" in html
    response = ada.client.post(JUDGE, {"judgment": second, "verdict": "unsure"}, **HTMX)
    assert response["HX-Redirect"] == DONE


def test_someone_elses_judgment_is_a_404_for_her(ada):
    hypothesis(DISTRESS)
    judgment = answer(ada)
    bo = join()
    url = f"/d/demo/judgments/{judgment.pk}/"
    assert bo.client.get(url).status_code == 404
    assert bo.client.post(url, {"verdict": "not_upgrade"}).status_code == 404
    assert bo.client.post(JUDGE, {"judgment": judgment.pk, "verdict": "upgrade"}).status_code == 404
    judgment.refresh_from_db()
    assert judgment.verdict == "upgrade"


@pytest.mark.parametrize("url", [VOTE, JUDGE, JUDGMENTS, DONE])
def test_someone_who_has_not_joined_is_sent_to_the_landing_page(demo, url):
    response = Client().get(url)
    assert (response.status_code, response["Location"]) == (302, "/d/demo/")


def test_a_participant_without_a_card_is_sent_back_to_the_interview(demo):
    bo = join()
    assert bo.client.get(VOTE)["Location"] == "/d/demo/interview/"


def test_after_matching_her_value_she_goes_on_to_the_vote(demo):
    browser = join()
    match = browser.confirm_scripted_card()["Location"]
    response = browser.client.get(match)  # nothing close yet: the match step is skipped
    assert response["Location"] == VOTE


def test_a_story_is_shown_in_a_handful_of_queries_however_many_others_judged(
    ada, demo, django_assert_max_num_queries
):
    """The story page is the one participants load most (once per story). Counting the
    stories left for her ("Story n of m") must not redo the routing, which weighs every
    judgment in the deliberation (it took 20 queries when it did)."""
    demo.judgments_per_participant = 3
    demo.save()
    for _ in range(4):
        answered_by_others(hypothesis(DISTRESS), 5)
    first = current_story(ada)  # drawn by the routing
    with django_assert_max_num_queries(13):
        html = page(ada.client.get(JUDGE))  # a reload: the same story again
    assert f'name="judgment" value="{first.pk}"' in html
    assert "Story 1 of 3" in html


def test_answering_a_story_and_drawing_the_next_take_a_handful_of_queries(
    ada, demo, django_assert_max_num_queries
):
    """Each participant answers several stories, one request to answer and one to draw the next
    story: the pages the load benchmark sends most (bench/request_cost.py). The routing reads
    the participant's own values once; storing an answer reads the deliberation once (for the
    rate limit and the view) and not the judgment's context."""
    demo.judgments_per_participant = 3
    demo.save()
    for _ in range(4):
        answered_by_others(hypothesis(DISTRESS), 5)
    first = current_story(ada)
    with django_assert_max_num_queries(9):
        response = ada.client.post(JUDGE, {"judgment": first.pk, "verdict": "upgrade"})
    assert response["Location"] == JUDGE
    with django_assert_max_num_queries(16):
        html = page(ada.client.get(JUDGE))
    second = int(re.search(r'name="judgment" value="(\d+)"', html).group(1))
    assert second != first.pk
    assert "Story 2 of 3" in html
    first.refresh_from_db()
    assert first.verdict == "upgrade"

"""The research area: who may see it, creating and setting up a deliberation, the dashboard and
the reconciliation page.

Personas: Rhea, a researcher (in the researchers group); Sam, another researcher; Ada, a
participant; Pat, a logged-in user with no role.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from elicit import access
from elicit.models import (
    Context,
    Deliberation,
    Interview,
    ModerationFlag,
    Participant,
    StaffAssignment,
    SurveyResponse,
)
from graph import pipeline
from graph.models import PipelineJob, ScoringRun
from tests.factories import (
    CanonicalValueFactory,
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    InterviewFactory,
    ParticipantFactory,
    QuestionFactory,
    UserFactory,
    ValuesCardFactory,
)
from tests.graph.test_pipeline import judge

pytestmark = pytest.mark.django_db

PARTY = {
    "key": "party",
    "label": "Party",
    "choices": ["Left", "Right"],
    "required": False,
}


@pytest.fixture(autouse=True)
def _few_bootstrap_samples(settings):
    settings.BOOTSTRAP_SAMPLES = 40


def researcher(username="rhea", *, deliberations=()):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=access.RESEARCHERS_GROUP))
    for deliberation in deliberations:
        StaffAssignment.objects.create(
            user=user, deliberation=deliberation, role=StaffAssignment.Role.RESEARCHER
        )
    return user


def research_urls(slug):
    return [
        reverse(f"research:{name}", kwargs={"slug": slug})
        for name in ("dashboard", "edit", "results", "pipeline")
    ]


# --- Access ---------------------------------------------------------------------------------


def test_the_staff_groups_exist_after_migrating():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        access.RESEARCHERS_GROUP,
        access.MODERATORS_GROUP,
    }


def test_anonymous_visitors_and_participants_are_sent_to_sign_in(client):
    deliberation = DeliberationFactory()
    # Ada joined as a participant: her session knows her, but she has no account.
    client.post(reverse("elicit:landing", kwargs={"slug": deliberation.slug}), {"consent": "on"})
    for url in [reverse("research:index"), *research_urls(deliberation.slug)]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("research:login"))


def test_a_user_without_a_role_sees_no_research_page(client):
    deliberation = DeliberationFactory()
    client.force_login(UserFactory(username="pat"))
    for url in [reverse("research:index"), reverse("research:new")]:
        assert client.get(url).status_code == 404
    for url in research_urls(deliberation.slug):
        assert client.get(url).status_code == 404


def test_a_researcher_sees_only_their_deliberations(client):
    mine = DeliberationFactory(title="Mine")
    theirs = DeliberationFactory(title="Theirs")
    client.force_login(researcher(deliberations=[mine]))
    researcher("sam", deliberations=[theirs])
    index = client.get(reverse("research:index")).content.decode()
    assert "Mine" in index and "Theirs" not in index
    for url in research_urls(mine.slug):
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 200
    for url in research_urls(theirs.slug):
        assert client.get(url).status_code == 404
    run = client.post(reverse("research:run_pipeline", kwargs={"slug": theirs.slug}))
    assert run.status_code == 404
    assert not PipelineJob.objects.filter(deliberation=theirs).exists()


def test_a_researcher_signs_in_on_the_research_login_page(client):
    rhea = researcher()
    rhea.set_password("a long pass phrase")
    rhea.save()
    response = client.post(
        reverse("research:login"),
        {"username": "rhea", "password": "a long pass phrase", "next": reverse("research:new")},
    )
    assert response.status_code == 302 and response["Location"] == reverse("research:new")


# --- Creating and setting up ------------------------------------------------------------------


def test_a_researcher_creates_a_deliberation_and_becomes_its_researcher(client):
    rhea = researcher()
    client.force_login(rhea)
    response = client.post(reverse("research:new"), {"title": "Care at the end of life"})
    deliberation = Deliberation.objects.get(title="Care at the end of life")
    assert response["Location"] == reverse("research:edit", kwargs={"slug": deliberation.slug})
    assert deliberation.slug == "care-at-the-end-of-life"
    assert deliberation.status == Deliberation.Status.DRAFT
    assert access.can_research(rhea, deliberation)


def test_an_assigned_researcher_outside_the_group_cannot_create(client):
    deliberation = DeliberationFactory()
    helper = UserFactory(username="helper")
    StaffAssignment.objects.create(
        user=helper, deliberation=deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    client.force_login(helper)
    assert client.get(reverse("research:index")).status_code == 200
    assert client.post(reverse("research:new"), {"title": "X"}).status_code == 404
    assert not Deliberation.objects.filter(title="X").exists()


def test_a_taken_address_is_refused_and_the_title_kept(client):
    DeliberationFactory(slug="taken")
    client.force_login(researcher())
    response = client.post(reverse("research:new"), {"title": "My study", "slug": "taken"})
    assert response.status_code == 422
    assert "This address is taken" in response.content.decode()
    assert 'value="My study"' in response.content.decode()


def setup_post(deliberation, questions, fields=(), **settings):
    data = {
        "d-title": deliberation.title,
        "d-description": "",
        "d-consent_text": "",
        "d-status": "open",
        "d-access": "invite",
        "d-moderation_mode": "strict",
        "d-estimated_minutes": "15",
        "d-wisest_vote_size": "6",
        "d-judgments_per_participant": "4",
        "d-completion_code": "C0DE42",
        "d-completion_redirect_url": "https://app.prolific.com/submissions/complete?cc=C0DE42",
        "d-llm_model": "gpt-4o-mini",
        **{f"d-{k}": v for k, v in settings.items()},
        "q-TOTAL_FORMS": str(len(questions)),
        "q-INITIAL_FORMS": "0",
        "f-TOTAL_FORMS": str(len(fields)),
        "f-INITIAL_FORMS": "0",
    }
    for i, question in enumerate(questions):
        for key, value in question.items():
            data[f"q-{i}-{key}"] = value
    for i, field in enumerate(fields):
        for key, value in field.items():
            data[f"f-{i}-{key}"] = value
    return data


def test_the_setup_saves_questions_with_a_shared_context_fields_and_settings(client):
    rhea = researcher()
    client.force_login(rhea)
    deliberation = DeliberationFactory(status="draft")
    StaffAssignment.objects.create(user=rhea, deliberation=deliberation, role="researcher")
    shared = "When a decision has lasting consequences"
    questions = [
        {
            "text": "Should I move abroad?",
            "is_active": "on",
            "contexts": f"When I am torn\n{shared}",
        },
        {"text": "Should I quit?", "slug": "quit", "is_active": "on", "contexts": shared},
        {"text": "", "contexts": ""},  # the empty row offered to add one: ignored
    ]
    fields = [{"key": "party", "label": "Party", "choices": "Left\nRight\n", "required": "on"}]
    url = reverse("research:edit", kwargs={"slug": deliberation.slug})
    response = client.post(url, setup_post(deliberation, questions, fields))
    assert response.status_code == 302
    deliberation.refresh_from_db()
    assert deliberation.access == "invite" and deliberation.moderation_mode == "strict"
    assert deliberation.completion_code == "C0DE42"
    assert deliberation.llm_model == "gpt-4o-mini"
    assert deliberation.demographic_fields == [
        {"key": "party", "label": "Party", "choices": ["Left", "Right"], "required": True}
    ]
    move, quit_ = deliberation.questions.all()
    assert move.slug == "should-i-move-abroad" and quit_.slug == "quit"
    assert Context.objects.filter(deliberation=deliberation, text=shared).count() == 1
    assert set(Context.objects.get(text=shared).questions.all()) == {move, quit_}
    # The page shows what was saved, one line per context.
    page = client.get(url).content.decode()
    assert "When I am torn\n" + shared in page


def test_a_context_no_question_uses_is_removed_unless_stories_cite_it(client):
    rhea = researcher()
    client.force_login(rhea)
    deliberation = DeliberationFactory()
    StaffAssignment.objects.create(user=rhea, deliberation=deliberation, role="researcher")
    question = QuestionFactory(deliberation=deliberation, slug="q")
    cited = ContextFactory(deliberation=deliberation, text="When cited")
    unused = ContextFactory(deliberation=deliberation, text="When unused")
    question.contexts.set([cited, unused])
    HypothesisFactory(deliberation=deliberation, context=cited)
    post = setup_post(
        deliberation,
        [
            {
                "pk": question.pk,
                "text": question.text,
                "slug": "q",
                "is_active": "on",
                "contexts": "When new",
            }
        ],
    )
    post["q-INITIAL_FORMS"] = "1"
    client.post(reverse("research:edit", kwargs={"slug": deliberation.slug}), post)
    assert set(question.contexts.values_list("text", flat=True)) == {"When new"}
    assert Context.objects.filter(pk=cited.pk).exists()
    assert not Context.objects.filter(pk=unused.pk).exists()


def test_bad_setup_input_saves_nothing_and_keeps_what_was_typed(client):
    rhea = researcher()
    client.force_login(rhea)
    deliberation = DeliberationFactory(title="Before")
    StaffAssignment.objects.create(user=rhea, deliberation=deliberation, role="researcher")
    questions = [
        {"text": "A question without contexts", "is_active": "on", "contexts": ""},
        {"text": "", "contexts": "When orphaned"},
    ]
    post = setup_post(deliberation, questions, d_title="x")
    post["d-title"] = "After"
    post["d-wisest_vote_size"] = "1"
    response = client.post(reverse("research:edit", kwargs={"slug": deliberation.slug}), post)
    page = response.content.decode()
    assert response.status_code == 422
    assert "Nothing was saved" in page
    assert "A question that is asked needs at least one context." in page
    assert "Write the question, or empty the whole row." in page
    assert "A question without contexts" in page and "When orphaned" in page
    deliberation.refresh_from_db()
    assert deliberation.title == "Before"
    assert not deliberation.questions.exists()


# --- Dashboard --------------------------------------------------------------------------------


@pytest.fixture
def rhea_client(client):
    deliberation = DeliberationFactory(title="Study", demographic_fields=[PARTY])
    client.force_login(researcher(deliberations=[deliberation]))
    client.deliberation = deliberation
    return client


def test_the_dashboard_shows_the_funnel_tokens_and_survey(rhea_client, settings):
    deliberation = rhea_client.deliberation
    now = timezone.now()
    for n in range(3):
        person = ParticipantFactory(deliberation=deliberation, consented_at=now)
        Participant.objects.filter(pk=person.pk).update(created_at=now - timedelta(minutes=2))
        if n < 2:
            interview = InterviewFactory(
                participant=person, prompt_tokens=1_000_000, completion_tokens=500_000
            )
            Interview.objects.filter(pk=interview.pk).update(started_at=now + timedelta(minutes=1))
        if n == 0:
            SurveyResponse.objects.create(participant=person, felt_represented=5, graph_fair=2)
    url = reverse("research:dashboard", kwargs={"slug": deliberation.slug})
    page = rhea_client.get(url).content.decode()
    assert "unknown (no prices configured)" in page
    assert "2000000" in page and "1000000" in page  # tokens, prompt and completion
    assert (
        '<tr data-step="consented"><td>Consented</td><td>3</td><td>100%</td><td>2 min 00 s</td>'
        in page
    )
    started = "<td>Interview started</td><td>2</td><td>67%</td><td>1 min 00 s</td>"
    assert f'<tr data-step="interview_started">{started}' in page
    assert "1 response." in page
    settings.LLM_PRICE_PROMPT_PER_MTOK = 2.5
    settings.LLM_PRICE_COMPLETION_PER_MTOK = 10
    page = rhea_client.get(url).content.decode()
    assert "<td>15.00</td>" in page  # 2 M prompt tokens at 2.5 + 1 M completion at 10


def test_running_the_pipeline_from_the_dashboard_queues_it_once(rhea_client):
    deliberation = rhea_client.deliberation
    url = reverse("research:run_pipeline", kwargs={"slug": deliberation.slug})
    response = rhea_client.post(url, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="pipeline"')
    assert "The pipeline is queued" in page
    assert 'hx-trigger="every 2s"' in page  # polls while it is queued
    again = rhea_client.post(url, headers={"HX-Request": "true"}).content.decode()
    assert "already queued or running" in again
    job = PipelineJob.objects.get(deliberation=deliberation, kind="pipeline")
    assert job.triggered_by.username == "rhea"


def test_the_pipeline_panel_shows_progress_and_failures_and_stops_polling_when_done(rhea_client):
    deliberation = rhea_client.deliberation
    url = reverse("research:pipeline", kwargs={"slug": deliberation.slug})
    job = PipelineJob.objects.create(
        deliberation=deliberation,
        kind="pipeline",
        status="running",
        progress_total=3,
        progress_done=1,
    )
    page = rhea_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "step 1 of 3" in page and 'hx-trigger="every 2s"' in page
    PipelineJob.objects.filter(pk=job.pk).update(status="failed", error="Score the graph: boom")
    page = rhea_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "Failed: Score the graph: boom" in page
    assert "hx-trigger" not in page
    # Without htmx, the panel's address leads to the whole dashboard.
    assert rhea_client.get(url).status_code == 302


# --- Results ----------------------------------------------------------------------------------


def scored_world(deliberation):
    """Values A, B, C in one context. Eight "Left" participants say A -> B is an upgrade and
    B -> C is not; three "Right" participants say B -> C is an upgrade. B wins overall; the
    Right group alone makes C win."""
    context = ContextFactory(deliberation=deliberation, text="When it is hard")
    question = QuestionFactory(deliberation=deliberation, text="What should I do?")
    question.contexts.add(context)
    values = {}
    for title in ("Value A", "Value B", "Value C"):
        values[title] = CanonicalValueFactory(deliberation=deliberation, title=title)
        ValuesCardFactory(
            deliberation=deliberation, question=question, canonical=values[title], title=title
        )
    ab = HypothesisFactory(
        deliberation=deliberation,
        context=context,
        from_value=values["Value A"],
        to_value=values["Value B"],
    )
    bc = HypothesisFactory(
        deliberation=deliberation,
        context=context,
        from_value=values["Value B"],
        to_value=values["Value C"],
    )
    people = {"Left": [], "Right": []}
    for _ in range(8):
        person = ParticipantFactory(deliberation=deliberation, demographics={"party": "Left"})
        judge(person, ab, "upgrade")
        judge(person, bc, "not_upgrade")
        people["Left"].append(person)
    for _ in range(3):
        person = ParticipantFactory(deliberation=deliberation, demographics={"party": "Right"})
        people["Right"].append((person, judge(person, bc, "upgrade")))
    return context, values, people


def test_the_results_show_the_winner_its_interval_stability_and_the_disagreeing_group(
    rhea_client,
):
    deliberation = rhea_client.deliberation
    _, values, _ = scored_world(deliberation)
    run = pipeline.run_scoring(deliberation_id=deliberation.pk)
    stored = run.results["contexts"][0]
    winner = values["Value B"].pk
    assert stored["winners"] == [winner]
    i = stored["values"].index(winner)
    page = rhea_client.get(
        reverse("research:results", kwargs={"slug": deliberation.slug})
    ).content.decode()
    # The page shows the stored figures, as stored.
    assert '<span class="winner">Value B</span>' in page
    assert f"<td>Value B</td><td>{stored['scores'][i]:.3f}</td>" in page
    low, high = stored["bootstrap"]["ci_low"][i], stored["bootstrap"]["ci_high"][i]
    assert f"<td>{low:.3f} \N{EN DASH} {high:.3f}</td>" in page
    rate = round(100 * stored["bootstrap"]["win_rate"][i])
    assert f"Value B wins in {rate}% of 40 bootstrap samples" in page
    # The Right group's judgments alone do not make Value B win.
    assert "Worst-supported group: <strong>Right</strong>" in page
    assert "Not every group's judgments make the winner win." in page
    assert '<tr data-group="Right" class="is-worst">' in page


def test_the_pipeline_adds_a_run_with_the_flagged_judgments_for_the_side_by_side_view(
    rhea_client, no_llm
):
    deliberation = rhea_client.deliberation
    _, _, people = scored_world(deliberation)
    # Five more Right participants whose judgments are flagged: with them, C wins.
    bc = people["Right"][0][1].hypothesis
    for _ in range(5):
        person = ParticipantFactory(deliberation=deliberation, demographics={"party": "Right"})
        ModerationFlag.objects.create(
            deliberation=deliberation,
            content_type=ContentType.objects.get_for_model(Participant),
            object_id=person.pk,
            source=ModerationFlag.Source.VOTE_QUALITY,
            reason="too_fast",
        )
        judge(person, bc, "upgrade")
    pipeline.run_pipeline(deliberation_id=deliberation.pk)
    without = ScoringRun.objects.get(deliberation=deliberation, include_flagged=False)
    with_flagged = ScoringRun.objects.get(deliberation=deliberation, include_flagged=True)
    assert without.input_counts["excluded"]["flagged"] == 5
    page = rhea_client.get(
        reverse("research:results", kwargs={"slug": deliberation.slug})
    ).content.decode()
    assert "left out 5 judgments with an open vote-quality flag" in page
    assert f"Without flagged (run #{without.pk})" in page
    assert f"With flagged (run #{with_flagged.pk})" in page
    assert "winner changes" in page


def test_a_researcher_can_pick_an_older_run_and_an_unknown_run_falls_back(rhea_client):
    deliberation = rhea_client.deliberation
    scored_world(deliberation)
    first = pipeline.run_scoring(deliberation_id=deliberation.pk, name="first")
    second = pipeline.run_scoring(deliberation_id=deliberation.pk, name="second")
    url = reverse("research:results", kwargs={"slug": deliberation.slug})
    assert f"Run #{first.pk}" in rhea_client.get(url, {"run": first.pk}).content.decode()
    assert f"Run #{second.pk}" in rhea_client.get(url, {"run": "nonsense"}).content.decode()
    other = DeliberationFactory()
    foreign = ScoringRun.objects.create(deliberation=other, status="done", code_version="x")
    assert f"Run #{foreign.pk}" not in rhea_client.get(url, {"run": foreign.pk}).content.decode()


def test_the_results_page_says_when_there_is_nothing_yet(rhea_client):
    page = rhea_client.get(
        reverse("research:results", kwargs={"slug": rhea_client.deliberation.slug})
    ).content.decode()
    assert "No scoring run has finished yet." in page


def results_page_of_edited_run(client, edit) -> str:
    """Score, let *edit* change the stored results in place, and read the results page."""
    deliberation = client.deliberation
    run = pipeline.run_scoring(deliberation_id=deliberation.pk)
    results = run.results
    edit(results)
    ScoringRun.objects.filter(pk=run.pk).update(results=results)
    url = reverse("research:results", kwargs={"slug": deliberation.slug})
    return client.get(url).content.decode()


def test_an_old_run_without_bootstrap_or_groups_still_shows(rhea_client):
    deliberation = rhea_client.deliberation
    scored_world(deliberation)

    def older(results):
        results.pop("groups")
        for context in results["contexts"]:
            context.pop("bootstrap")

    page = results_page_of_edited_run(rhea_client, older)
    assert '<span class="winner">Value B</span>' in page
    assert "no confidence intervals" in page
    assert "No group results in this run" in page


def test_bradley_terry_columns_show_and_a_disagreement_is_said_plainly(rhea_client):
    deliberation = rhea_client.deliberation
    _, values, _ = scored_world(deliberation)

    def with_bradley_terry(results):
        results["contexts"][0]["bradley_terry"] = {
            "strength": [0.1, 0.2, 0.7],
            "se": [0.05, 0.05, 0.05],
            "winners": [values["Value C"].pk],
        }
        results["contexts"][0]["estimators_agree"] = False

    page = results_page_of_edited_run(rhea_client, with_bradley_terry)
    assert "Bradley-Terry strength" in page
    assert "0.700 ± 0.050" in page
    assert "The estimators disagree: Bradley-Terry picks Value C" in page


def test_the_stored_bootstrap_is_reproducible_and_follows_the_seed_setting(rhea_client, settings):
    deliberation = rhea_client.deliberation
    scored_world(deliberation)

    def bootstrap(name):
        run = pipeline.run_scoring(deliberation_id=deliberation.pk, name=name)
        return run.results["contexts"][0]["bootstrap"]

    first, again = bootstrap("first"), bootstrap("again")
    assert first == again and first["seed"] == settings.BOOTSTRAP_SEED
    settings.BOOTSTRAP_SEED += 1
    assert bootstrap("other-seed")["win_rate"] != first["win_rate"]


def test_a_moderator_who_signs_in_lands_on_the_moderation_queue(client):
    deliberation = DeliberationFactory()
    mo = UserFactory(username="mo")
    StaffAssignment.objects.create(user=mo, deliberation=deliberation, role="moderator")
    mo.set_password("a long pass phrase")
    mo.save()
    response = client.post(
        reverse("research:login"), {"username": "mo", "password": "a long pass phrase"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("moderation:queue")
    assert response.status_code == 200


def test_a_context_without_kept_upgrades_is_shown_as_a_tie_not_a_winner(rhea_client):
    deliberation = rhea_client.deliberation
    context = ContextFactory(deliberation=deliberation, text="When nobody judged yet")
    question = QuestionFactory(deliberation=deliberation)
    question.contexts.add(context)
    for title in ("Value A", "Value B"):
        value = CanonicalValueFactory(deliberation=deliberation, title=title)
        ValuesCardFactory(deliberation=deliberation, question=question, canonical=value)
    pipeline.run_scoring(deliberation_id=deliberation.pk)
    page = rhea_client.get(
        reverse("research:results", kwargs={"slug": deliberation.slug})
    ).content.decode()
    assert "its values are tied, and it has no winner yet" in page
    assert '<span class="winner">' not in page

"""A participant's own data: the download, deletion under each policy and the rescoring after
it, the personal link, and the retention period. Personas: Ada asks for her data and its
deletion; Bo and Cy are other participants; Mallory tries to reach Ada's data."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from elicit import services as elicit_services
from elicit.demo import seed_demo
from elicit.models import (
    CardRevision,
    Deliberation,
    Interview,
    Invite,
    Message,
    ModerationAction,
    Participant,
    SurveyResponse,
    ValuesCard,
)
from graph import participation, pipeline, services, tasks
from graph.models import (
    CanonicalValue,
    JudgmentRevision,
    PipelineJob,
    ScoringRun,
    UpgradeHypothesis,
    UpgradeJudgment,
)
from tests.elicit.helpers import join
from tests.factories import HypothesisFactory, ParticipantFactory, ValuesCardFactory

pytestmark = pytest.mark.django_db

PANEL_ID = "ADA-PANEL-7731"
STORY_OF_ADA = "My sister Zoe faced this at nineteen and felt very alone."
ADA_COMMENT = "Listening matters more than advice, as my sister learned."


def shown(participant, hypothesis):
    return UpgradeJudgment.objects.create(
        participant=participant,
        hypothesis=hypothesis,
        context=hypothesis.context,
        pair_key=hypothesis.pair_key,
    )


def judged(participant, hypothesis, verdict, comment=""):
    judgment = shown(participant, hypothesis)
    return participation.answer_judgment(judgment=judgment, verdict=verdict, comment=comment)


class World:
    """The demo. Ada joined from a panel link, talked with the interviewer, wrote the card that
    became value A, and judged a story with a comment (then revised it). Bo and Cy wrote B and
    C and judged that A is wiser than both, so A wins its context."""

    def __init__(self):
        self.deliberation = seed_demo()[0]
        self.browser = join(PROLIFIC_PID=PANEL_ID, demo_political_affiliation="Independent")
        self.ada = self.browser.participant
        self.interview = self.browser.interview
        self.question = self.interview.question
        self.context = self.question.contexts.first()
        elicit_services.record_participant_message(interview=self.interview, text=STORY_OF_ADA)
        Message.objects.create(
            interview=self.interview,
            seq=99,
            role=Message.Role.INTERVIEWER,
            content="You said your sister Zoe felt alone. What did you notice?",
        )
        self.card = ValuesCardFactory(
            deliberation=self.deliberation,
            participant=self.ada,
            question=self.question,
            interview=self.interview,
            title="Being with Zoe",
            description="Staying beside someone who is alone with a hard choice.",
        )
        CardRevision.objects.create(
            card=self.card, title="Zoe first", description="The first wording.", policies=[]
        )
        Interview.objects.filter(pk=self.interview.pk).update(status=Interview.Status.COMPLETED)
        self.a = self.value_of(self.card)
        self.bo = ParticipantFactory(deliberation=self.deliberation)
        self.cy = ParticipantFactory(deliberation=self.deliberation)
        self.b = self.value_of(self.card_of(self.bo, "Honest information"))
        self.c = self.value_of(self.card_of(self.cy, "Respect for faith"))
        self.ba = self.hypothesis(self.b, self.a)
        self.ca = self.hypothesis(self.c, self.a)
        self.bc = self.hypothesis(self.b, self.c)
        for person in (self.bo, self.cy):
            judged(person, self.ba, "upgrade")
            judged(person, self.ca, "upgrade")
        first = judged(self.ada, self.bc, "unsure", "first thought")
        self.ada_judgment = participation.answer_judgment(
            judgment=first, verdict="upgrade", comment=ADA_COMMENT
        )
        SurveyResponse.objects.create(participant=self.ada, felt_represented=5, comment="Zoe")

    def card_of(self, participant, title):
        return ValuesCardFactory(
            deliberation=self.deliberation,
            participant=participant,
            question=self.question,
            title=title,
        )

    def value_of(self, card):
        value = services.new_value_from(card)
        ValuesCard.objects.filter(pk=card.pk).update(canonical=value)
        return value

    def hypothesis(self, a, b):
        return HypothesisFactory(
            deliberation=self.deliberation,
            context=self.context,
            from_value=a,
            to_value=b,
            story=f"Someone who lived by {a.title} came to live by {b.title}.",
            policy_mapping=[{"from": "x", "to": "y", "relation": "refined"}],
        )

    def context_result(self, run):
        (result,) = [r for r in run.results["contexts"] if r["context_id"] == self.context.pk]
        return result

    def delete(self, client=None, **extra):
        client = client or self.browser.client
        return client.post("/d/demo/my-data/delete/", {"confirm": "yes"}, **extra)


@pytest.fixture
def world(no_llm):
    return World()


# --- The download ---------------------------------------------------------------------------------


def test_a_participant_downloads_everything_stored_about_them(world):
    response = world.browser.client.post("/d/demo/my-data/download/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="my-data-demo.json"'
    data = json.loads(response.content)
    me = data["participant"]
    assert (me["panel_pid"], me["demographics"]) == (
        PANEL_ID,
        {"political_affiliation": "Independent"},
    )
    assert me["public_id"] == str(world.ada.public_id)
    (interview,) = data["interviews"]
    contents = [m["content"] for m in interview["messages"]]
    assert STORY_OF_ADA in contents
    assert "You said your sister Zoe felt alone. What did you notice?" in contents
    (card,) = data["cards"]
    assert card["title"] == "Being with Zoe"
    assert card["revisions"][0]["title"] == "Zoe first"
    (judgment,) = data["judgments"]
    assert (judgment["verdict"], judgment["comment"]) == ("upgrade", ADA_COMMENT)
    assert [r["comment"] for r in judgment["revisions"]] == ["first thought", ADA_COMMENT]
    assert (data["survey"]["felt_represented"], data["survey"]["comment"]) == (5, "Zoe")
    # Only her own: nothing of Bo's value or answers.
    assert "Honest information" not in json.dumps([data["cards"], data["interviews"]])


def test_the_page_shows_the_data_and_offers_download_and_deletion(world):
    page = world.browser.client.get("/d/demo/my-data/").content.decode()
    assert PANEL_ID in page
    assert "Independent" in page
    assert STORY_OF_ADA in page
    assert 'action="/d/demo/my-data/download/"' in page
    assert 'href="/d/demo/my-data/delete/"' in page


def test_nobody_else_reaches_a_participants_data(world):
    mallory = join()
    page = mallory.client.get("/d/demo/my-data/").content.decode()
    assert PANEL_ID not in page and STORY_OF_ADA not in page  # Mallory sees only her own
    assert Client().get("/d/demo/my-data/").status_code == 404
    assert Client().post("/d/demo/my-data/download/").status_code == 404
    assert Client().get("/r/not-a-token/my-data/").status_code == 404
    assert Client().post("/r/not-a-token/my-data/delete/", {"confirm": "yes"}).status_code == 404
    world.ada.refresh_from_db()
    assert world.ada.erased_at is None


def test_the_personal_link_reaches_the_data_from_any_browser(world):
    token = world.ada.receipt_token
    other_browser = Client()
    assert PANEL_ID in other_browser.get(f"/r/{token}/my-data/").content.decode()
    data = json.loads(other_browser.post(f"/r/{token}/my-data/download/").content)
    assert data["participant"]["panel_pid"] == PANEL_ID


# --- Deletion -------------------------------------------------------------------------------------


def test_deletion_asks_for_confirmation_first(world):
    page = world.browser.client.get("/d/demo/my-data/delete/").content.decode()
    assert "cannot be undone" in page
    response = world.browser.client.post("/d/demo/my-data/delete/", {})
    assert response.status_code == 422
    assert "Please tick the box" in response.content.decode()
    world.ada.refresh_from_db()
    assert world.ada.erased_at is None
    assert Message.objects.filter(content=STORY_OF_ADA).exists()


def test_deletion_removes_her_text_and_identifiers_and_rescores_the_graph(
    world, django_capture_on_commit_callbacks
):
    before = pipeline.run_scoring(deliberation_id=world.deliberation.pk)
    assert world.context_result(before)["winners"] == [world.a.pk]
    old_token, old_public_id = world.ada.receipt_token, world.ada.public_id

    with django_capture_on_commit_callbacks(execute=True):
        response = world.delete()

    assert response.status_code == 302
    assert response["Location"] == "/d/demo/"
    landing = world.browser.client.get("/d/demo/").content.decode()
    assert "Your data was deleted" in landing
    ada = Participant.objects.get(pk=world.ada.pk)
    assert ada.erased_at is not None
    assert PANEL_ID not in ada.panel_pid and ada.demographics == {}
    assert (ada.receipt_token, ada.public_id) != (old_token, old_public_id)
    # Her text: messages (the interviewer's quoting her too), card, revisions, comments, survey.
    assert not Message.objects.filter(interview__participant=ada).exclude(content="").exists()
    card = ValuesCard.objects.get(pk=world.card.pk)
    assert (card.title, card.description, card.policies) == ("[erased]", "", [])
    assert not CardRevision.objects.filter(card=card).exists()
    assert UpgradeJudgment.objects.get(pk=world.ada_judgment.pk).comment == ""
    assert set(
        JudgmentRevision.objects.filter(judgment=world.ada_judgment).values_list(
            "comment", flat=True
        )
    ) == {""}
    assert SurveyResponse.objects.get(participant=ada).comment == ""
    assert "Zoe" not in json.dumps(
        list(CanonicalValue.objects.values("title", "description", "policies"))
    )
    # Her verdict and survey score stay; value A, worded only by her, leaves the graph.
    assert UpgradeJudgment.objects.get(pk=world.ada_judgment.pk).verdict == "upgrade"
    assert SurveyResponse.objects.get(participant=ada).felt_represented == 5
    a = CanonicalValue.objects.get(pk=world.a.pk)
    assert a.hidden_at is not None
    assert UpgradeHypothesis.objects.get(pk=world.ba.pk).story == ""
    assert UpgradeHypothesis.objects.get(pk=world.bc.pk).story != ""  # not about her value
    # The graph was rescored when the erasure committed: A is gone from it.
    after = ScoringRun.objects.filter(status=ScoringRun.Status.DONE).exclude(pk=before.pk).get()
    assert after.job.params["reason"] == "erasure"
    result = world.context_result(after)
    assert world.a.pk not in result["values"] and world.a.pk not in result["winners"]
    assert after.input_counts["excluded"]["hidden"] == 4
    # The audit log says what happened, by nobody but herself, without her text.
    action = ModerationAction.objects.get(action="erase")
    assert (action.actor, action.object_id, action.deliberation) == (
        None,
        ada.pk,
        world.deliberation,
    )
    assert action.after["values_hidden"] == [world.a.pk]
    assert "Zoe" not in json.dumps([action.before, action.after, action.target_repr])


def test_after_deletion_every_session_is_forgotten_and_she_cannot_join_again(world):
    other_device = Client()
    assert other_device.get(f"/d/demo/?PROLIFIC_PID={PANEL_ID}").status_code == 302  # resumed
    token = world.ada.receipt_token

    world.delete()

    for client in (world.browser.client, other_device):
        assert client.get("/d/demo/my-data/").status_code == 404
        response = client.get("/d/demo/vote/")
        assert response.status_code == 302 and response["Location"] == "/d/demo/"
    assert Client().get(f"/r/{token}/my-data/").status_code == 404
    # The same panel link again: no second participant, and a clear message.
    response = Client().get(f"/d/demo/?PROLIFIC_PID={PANEL_ID}")
    assert response.status_code == 200
    assert "your data was deleted" in response.content.decode()
    response = Client().post("/d/demo/join/", {"consent": "on", "PROLIFIC_PID": PANEL_ID})
    assert response.status_code == 403
    assert Participant.objects.filter(deliberation=world.deliberation).count() == 3


def test_a_value_shared_with_another_card_takes_that_cards_wording(world):
    bo_card = ValuesCardFactory(
        deliberation=world.deliberation,
        participant=world.bo,
        question=world.question,
        title="Company in hard choices",
        description="Not leaving someone alone when they must decide.",
        canonical=world.a,
    )

    world.delete()

    a = CanonicalValue.objects.get(pk=world.a.pk)
    assert a.hidden_at is None
    assert (a.title, a.description, a.representative) == (
        "Company in hard choices",
        "Not leaving someone alone when they must decide.",
        bo_card,
    )
    # The stories were written from Ada's wording: emptied, so the cards speak instead.
    assert UpgradeHypothesis.objects.get(pk=world.ba.pk).story == ""
    assert UpgradeHypothesis.objects.get(pk=world.ba.pk).policy_mapping == []


def test_the_anonymise_policy_keeps_the_text_and_removes_what_identifies_her(world):
    Deliberation.objects.filter(pk=world.deliberation.pk).update(
        deletion_policy=Deliberation.DeletionPolicy.ANONYMISE
    )
    invite = Invite.objects.create(deliberation=world.deliberation, note="for Ada Lovelace")
    Participant.objects.filter(pk=world.ada.pk).update(invite=invite)

    world.delete()

    ada = Participant.objects.get(pk=world.ada.pk)
    assert ada.erased_at is not None
    assert (ada.panel_pid.startswith("erased:"), ada.demographics, ada.invite) == (True, {}, None)
    assert not Invite.objects.filter(note="for Ada Lovelace").exists()  # the link is dead too
    assert Message.objects.filter(content=STORY_OF_ADA).exists()
    assert ValuesCard.objects.get(pk=world.card.pk).title == "Being with Zoe"
    assert UpgradeJudgment.objects.get(pk=world.ada_judgment.pk).comment == ADA_COMMENT
    assert CanonicalValue.objects.get(pk=world.a.pk).hidden_at is None
    assert ModerationAction.objects.get(action="erase").after["policy"] == "anonymise"


def test_erasing_twice_erases_and_logs_once(world):
    from graph import privacy

    assert privacy.erase_participant(participant=world.ada) is True
    assert privacy.erase_participant(participant=world.ada) is False
    assert ModerationAction.objects.filter(action="erase").count() == 1
    assert PipelineJob.objects.filter(kind=PipelineJob.Kind.SCORE).count() == 1


# --- Retention ------------------------------------------------------------------------------------


def test_retention_erases_participants_past_the_period_once(world):
    Deliberation.objects.filter(pk=world.deliberation.pk).update(retention_days=30)
    Participant.objects.filter(pk__in=[world.ada.pk, world.bo.pk]).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    Participant.objects.filter(pk=world.cy.pk).update(
        created_at=timezone.now() - timedelta(days=29)
    )
    other = ParticipantFactory()  # a deliberation without a retention period
    Participant.objects.filter(pk=other.pk).update(created_at=timezone.now() - timedelta(days=999))

    assert tasks.apply_retention.delay().get() == 2
    assert tasks.apply_retention.delay().get() == 0  # a second run finds nothing left

    erased = set(Participant.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
    assert erased == {world.ada.pk, world.bo.pk}
    assert not Message.objects.filter(content=STORY_OF_ADA).exists()
    actions = ModerationAction.objects.filter(action="erase")
    assert actions.count() == 2
    assert {a.reason for a in actions} == {"Retention period of 30 days ended."}
    # One rescoring for the deliberation, not one per participant.
    assert PipelineJob.objects.filter(kind=PipelineJob.Kind.SCORE).count() == 1


def test_retention_is_on_the_beat_schedule(settings):
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "graph.apply_retention" in schedule

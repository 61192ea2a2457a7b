"""Moderation actions, their undo, and the audit-log entries they write. "Mo" moderates, "Max"
is a second moderator; "Ada" and "Bo" take part."""

from datetime import timedelta

import pytest
from django.utils import timezone

from elicit.models import (
    CardRevision,
    Deliberation,
    Interview,
    Message,
    ModerationAction,
    ModerationFlag,
    StaffAssignment,
    ValuesCard,
)
from graph import participation, pipeline
from graph.models import (
    CanonicalValue,
    DedupDecision,
    PipelineJob,
    UpgradeHypothesis,
    UpgradeJudgment,
    WisestVote,
)
from graph.moderation import services
from tests.factories import (
    CanonicalValueFactory,
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    InterviewFactory,
    ModerationFlagFactory,
    ParticipantFactory,
    QuestionFactory,
    ValuesCardFactory,
    staff,
)

pytestmark = pytest.mark.django_db

State = ModerationFlag.State
Approval = ValuesCard.Approval
MODERATOR = StaffAssignment.Role.MODERATOR


@pytest.fixture
def deliberation():
    return DeliberationFactory()


@pytest.fixture
def mo(deliberation):
    return staff("mo", deliberation, MODERATOR)


@pytest.fixture
def max_(deliberation):
    return staff("max", deliberation, MODERATOR)


def value_with_card(deliberation, title, *, question=None, participant=None, approval="approved"):
    """A canonical value made of one card (its representative), with its dedup decision."""
    card = ValuesCardFactory(
        deliberation=deliberation,
        question=question or QuestionFactory(deliberation=deliberation),
        participant=participant or ParticipantFactory(deliberation=deliberation),
        title=title,
        approval=approval,
    )
    value = CanonicalValueFactory(deliberation=deliberation, title=title, representative=card)
    ValuesCard.objects.filter(pk=card.pk).update(canonical=value)
    DedupDecision.objects.create(card=card, canonical=value, method="new_value")
    card.refresh_from_db()
    return value, card


def judge(participant, hypothesis, verdict="upgrade"):
    return UpgradeJudgment.objects.create(
        participant=participant,
        hypothesis=hypothesis,
        context=hypothesis.context,
        pair_key=hypothesis.pair_key,
        verdict=verdict,
        answered_at=timezone.now(),
    )


def last_action() -> ModerationAction:
    return ModerationAction.objects.order_by("-id").first()


# --- The audit log ------------------------------------------------------------------------------


def test_record_action_appends_an_entry_that_can_be_neither_changed_nor_deleted(deliberation, mo):
    value = CanonicalValueFactory(deliberation=deliberation, title="Honest care")
    entry = services.record_action(
        actor=mo,
        action="export",
        target=value,
        reason="asked by the ethics board",
        before={"a": 1},
        after={"a": 2},
    )
    assert (entry.deliberation, entry.actor, entry.object_id) == (deliberation, mo, value.pk)
    assert "Honest care" in entry.target_repr
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    assert ModerationAction.objects.count() == 1


def test_an_action_by_the_system_has_no_actor(deliberation):
    entry = services.record_action(actor=None, action="erase", deliberation_id=deliberation.pk)
    assert entry.actor is None and entry.deliberation == deliberation


# --- Approve ------------------------------------------------------------------------------------


def test_approving_a_pending_card_shows_it_and_closes_its_flag_and_undo_puts_both_back(
    deliberation, mo
):
    _value, card = value_with_card(deliberation, "Quiet presence", approval=Approval.PENDING)
    flag = ModerationFlagFactory(target=card, reason="awaiting_approval")
    action = services.approve(actor=mo, target=card, reason="fine", flag=flag)
    card.refresh_from_db()
    flag.refresh_from_db()
    assert card.approval == Approval.APPROVED
    assert (flag.state, flag.claimed_by) == (State.APPROVED, mo)
    assert flag.resolved_at is not None
    assert action.action == "approve" and action.reason == "fine"
    assert action.before == {"approval": "pending", "flags": {str(flag.pk): {"state": "open"}}}
    assert action.after["approval"] == "approved"

    undo = services.undo(actor=mo, action=action, reason="too fast")
    card.refresh_from_db()
    flag.refresh_from_db()
    assert card.approval == Approval.PENDING
    assert (flag.state, flag.claimed_by, flag.resolved_at) == (State.OPEN, None, None)
    assert (undo.action, undo.reverts, undo.reason) == ("undo approve", action, "too fast")


def test_an_action_is_undone_once(deliberation, mo):
    value, _card = value_with_card(deliberation, "Quiet presence")
    action = services.hide(actor=mo, target=value)
    services.undo(actor=mo, action=action)
    with pytest.raises(services.ModerationError):
        services.undo(actor=mo, action=action)
    assert ModerationAction.objects.filter(reverts=action).count() == 1


# --- Hide ---------------------------------------------------------------------------------------


def test_a_hidden_value_leaves_what_participants_see_and_scoring_and_comes_back_on_undo(
    deliberation, mo
):
    value, _card = value_with_card(deliberation, "Quiet presence")
    action = services.hide(actor=mo, target=value, reason="troll")
    assert value not in participation.shown_values(deliberation)
    value.refresh_from_db()
    assert value.hidden_at is not None
    assert action.before["hidden_at"] is None and action.after["hidden_at"]
    services.undo(actor=mo, action=action)
    value.refresh_from_db()
    assert value.hidden_at is None
    assert value in participation.shown_values(deliberation)


def test_hiding_a_card_keeps_it_and_undo_restores_its_approval(deliberation, mo):
    _value, card = value_with_card(deliberation, "Quiet presence", approval=Approval.PENDING)
    action = services.hide(actor=mo, target=card)
    card.refresh_from_db()
    assert card.approval == Approval.HIDDEN
    assert action.before["approval"] == "pending"
    services.undo(actor=mo, action=action)
    card.refresh_from_db()
    assert card.approval == Approval.PENDING


def test_a_value_worded_by_a_hidden_card_is_no_longer_shown(deliberation, mo):
    value, card = value_with_card(deliberation, "Quiet presence")
    services.hide(actor=mo, target=card)
    assert value not in participation.shown_values(deliberation)


def test_hiding_a_message_and_an_upgrade_comment_keeps_their_text(deliberation, mo):
    interview = InterviewFactory(participant__deliberation=deliberation)
    message = Message.objects.create(interview=interview, seq=1, role="participant", content="x!")
    hypothesis = HypothesisFactory(deliberation=deliberation)
    judgment = judge(interview.participant, hypothesis)
    UpgradeJudgment.objects.filter(pk=judgment.pk).update(comment="rude words")
    for target in (message, judgment):
        action = services.hide(actor=mo, target=target, reason="rude")
        target.refresh_from_db()
        assert target.hidden_at is not None
        assert action.deliberation == deliberation
    message.refresh_from_db()
    judgment.refresh_from_db()
    assert (message.content, judgment.comment) == ("x!", "rude words")


def test_a_hidden_story_is_left_out_of_scoring(deliberation, mo):
    hypothesis = HypothesisFactory(deliberation=deliberation)
    judge(ParticipantFactory(deliberation=deliberation), hypothesis)
    assert len(pipeline.read_judgments(deliberation=deliberation).rows) == 1
    services.hide(actor=mo, target=hypothesis)
    scoring = pipeline.read_judgments(deliberation=deliberation)
    assert scoring.rows == [] and scoring.excluded["hidden"] == 1


def test_hiding_twice_is_refused(deliberation, mo):
    value, _card = value_with_card(deliberation, "Quiet presence")
    services.hide(actor=mo, target=value)
    with pytest.raises(services.ModerationError):
        services.hide(actor=mo, target=value)


# --- Ban ----------------------------------------------------------------------------------------


def test_a_banned_participant_keeps_their_data_but_not_their_vote_and_undo_unbans(deliberation, mo):
    bo = ParticipantFactory(deliberation=deliberation)
    hypothesis = HypothesisFactory(deliberation=deliberation)
    judge(bo, hypothesis)
    interview = InterviewFactory(participant=bo)
    message = Message.objects.create(interview=interview, seq=1, role="participant", content="!")
    flag = ModerationFlagFactory(target=message, reason="spam_link")
    action = services.ban(actor=mo, participant=bo, reason="spam bot", flag=flag)
    bo.refresh_from_db()
    flag.refresh_from_db()
    assert bo.banned_at is not None and bo.ban_reason == "spam bot"
    assert flag.state == State.ACTIONED
    assert UpgradeJudgment.objects.filter(participant=bo).count() == 1
    assert pipeline.read_judgments(deliberation=deliberation).excluded["banned"] == 1
    assert action.after["ban_reason"] == "spam bot"

    services.undo(actor=mo, action=action)
    bo.refresh_from_db()
    flag.refresh_from_db()
    assert bo.banned_at is None and bo.ban_reason == ""
    assert flag.state == State.OPEN
    assert len(pipeline.read_judgments(deliberation=deliberation).rows) == 1


def test_a_ban_needs_a_reason(deliberation, mo):
    with pytest.raises(services.ModerationError):
        services.ban(
            actor=mo, participant=ParticipantFactory(deliberation=deliberation), reason=" "
        )


# --- Edit ---------------------------------------------------------------------------------------

NEW_WORDING = {
    "title": "Listening before advising",
    "description": "Hearing the person out before offering any advice.",
    "policies": [
        "MOMENTS when the person is still talking",
        "SIGNS that they want advice",
        "OPPORTUNITIES to ask what they need",
    ],
}


def test_editing_a_card_keeps_the_old_wording_updates_its_value_and_undo_restores_both(
    deliberation, mo
):
    value, card = value_with_card(deliberation, "Listen first please")
    old = {"title": card.title, "description": card.description, "policies": card.policies}
    action = services.edit_card(actor=mo, card=card, reason="typo", **NEW_WORDING)
    card.refresh_from_db()
    value.refresh_from_db()
    assert card.title == value.title == NEW_WORDING["title"]
    revision = CardRevision.objects.get(card=card)
    assert (revision.title, revision.edited_by, revision.reason) == (old["title"], mo, "typo")
    assert action.before["card"] == old and action.after["card"] == NEW_WORDING

    services.undo(actor=mo, action=action)
    card.refresh_from_db()
    value.refresh_from_db()
    assert (card.title, card.description, card.policies) == tuple(old.values())
    assert value.title == old["title"]
    assert CardRevision.objects.filter(card=card).count() == 2  # the history keeps both


def test_an_invalid_edit_is_refused_and_changes_nothing(deliberation, mo):
    _value, card = value_with_card(deliberation, "Listen first please")
    with pytest.raises(Exception) as error:
        services.edit_card(
            actor=mo, card=card, reason="", title="", description="x", policies=["a"]
        )
    assert "title" in error.value.errors
    card.refresh_from_db()
    assert card.title == "Listen first please"
    assert not ModerationAction.objects.exists()


# --- Merge and split ----------------------------------------------------------------------------


def snapshot(deliberation: Deliberation) -> dict:
    """Everything a merge may touch, in comparable form."""
    return {
        "cards": sorted(
            ValuesCard.objects.filter(deliberation=deliberation).values_list(
                "pk", "canonical_id", "chosen_canonical_id"
            )
        ),
        "decisions": sorted(
            DedupDecision.objects.filter(undone_at__isnull=True).values_list(
                "pk", "card_id", "canonical_id"
            )
        ),
        "shown": sorted(
            WisestVote.shown.through.objects.values_list("wisestvote_id", "canonicalvalue_id")
        ),
        "chosen": sorted(
            WisestVote.chosen.through.objects.values_list("wisestvote_id", "canonicalvalue_id")
        ),
        "hypotheses": sorted(
            UpgradeHypothesis.objects.values_list(
                "pk", "context_id", "from_value_id", "to_value_id"
            )
        ),
        "judgments": sorted(UpgradeJudgment.objects.values_list("pk", "hypothesis_id", "pair_key")),
        "merged": sorted(CanonicalValue.objects.values_list("pk", "merged_into_id")),
    }


@pytest.fixture
def two_duplicates(deliberation):
    """Values A and B say the same thing; X is a third value. Votes, stories and judgments
    touch A in every way a merge must handle."""
    question = QuestionFactory(deliberation=deliberation)
    context = ContextFactory(deliberation=deliberation)
    a, _card_a = value_with_card(deliberation, "Respect her choice", question=question)
    b, card_b = value_with_card(deliberation, "Respecting her choices", question=question)
    x, _card_x = value_with_card(deliberation, "Protect life", question=question)
    ValuesCard.objects.filter(pk=card_b.pk).update(chosen_canonical=a)
    people = [ParticipantFactory(deliberation=deliberation) for _ in range(3)]
    vote_a = WisestVote.objects.create(participant=people[0], question=question)
    vote_a.shown.set([a, x])
    vote_a.chosen.set([a])
    vote_ab = WisestVote.objects.create(participant=people[1], question=question)
    vote_ab.shown.set([a, b, x])
    vote_ab.chosen.set([a, b])
    a_to_x = HypothesisFactory(deliberation=deliberation, context=context, from_value=a, to_value=x)
    x_to_a = HypothesisFactory(
        deliberation=deliberation,
        context=ContextFactory(deliberation=deliberation),
        from_value=x,
        to_value=a,
    )
    a_to_b = HypothesisFactory(deliberation=deliberation, context=context, from_value=a, to_value=b)
    x_to_b = HypothesisFactory(deliberation=deliberation, context=context, from_value=x, to_value=b)
    judge(people[0], a_to_x)  # moves to a new B -> X
    judge(people[1], a_to_x)  # already judged X -> B in the context: would count twice
    judge(people[1], x_to_b, "not_upgrade")
    judge(people[2], x_to_a)  # moves to X -> B of its context
    judge(people[2], a_to_b)  # a self-loop once merged: stays, out of scoring
    return {"a": a, "b": b, "x": x, "context": context, "people": people, "a_to_x": a_to_x}


def test_merging_moves_cards_votes_and_judgments_to_the_target(deliberation, mo, two_duplicates):
    a, b, x = two_duplicates["a"], two_duplicates["b"], two_duplicates["x"]
    action = services.merge_values(actor=mo, source=a, target=b, reason="same value")
    a.refresh_from_db()
    assert a.merged_into == b
    assert not ValuesCard.objects.filter(canonical=a).exists()
    assert not ValuesCard.objects.filter(chosen_canonical=a).exists()
    assert not WisestVote.objects.filter(shown=a).exists()
    assert WisestVote.objects.filter(chosen=b).count() == 2
    # The cards' decisions say a moderator moved them.
    assert set(
        DedupDecision.objects.filter(card__canonical=b, undone_at__isnull=True).values_list(
            "method", flat=True
        )
    ) == {"moderator", "new_value"}
    # Judgments: B -> X was created for the moved judgment; the double one and the self-loop stay.
    b_to_x = UpgradeHypothesis.objects.get(
        context=two_duplicates["context"], from_value=b, to_value=x
    )
    assert b_to_x.story == two_duplicates["a_to_x"].story
    assert b_to_x.judgments.count() == 1
    moved = action.after["judgments"]
    assert len(moved["moved"]) == 2 and len(moved["left_judgments"]) == 1
    assert len(moved["left_hypotheses"]) == 1
    scoring = pipeline.read_judgments(deliberation=deliberation)
    counted = {(row[2], row[3]) for row in scoring.rows}
    assert counted == {(b.pk, x.pk), (x.pk, b.pk)}
    assert action.action == "merge" and action.before == {
        "merged_into": None,
        "value": a.pk,
        "into": b.pk,
    }


def test_undoing_a_merge_puts_back_exactly_what_was_there(deliberation, mo, two_duplicates):
    a, b = two_duplicates["a"], two_duplicates["b"]
    before = snapshot(deliberation)
    action = services.merge_values(actor=mo, source=a, target=b, reason="same value")
    assert snapshot(deliberation) != before
    services.undo(actor=mo, action=action, reason="they differ after all")
    assert snapshot(deliberation) == before
    assert last_action().reverts == action


def test_a_merged_value_cannot_be_merged_again_or_into_itself(deliberation, mo, two_duplicates):
    a, b, x = two_duplicates["a"], two_duplicates["b"], two_duplicates["x"]
    with pytest.raises(services.ModerationError):
        services.merge_values(actor=mo, source=a, target=a)
    services.merge_values(actor=mo, source=a, target=b)
    a.refresh_from_db()
    with pytest.raises(services.ModerationError):
        services.merge_values(actor=mo, source=a, target=x)
    with pytest.raises(services.ModerationError):
        services.merge_values(actor=mo, source=x, target=a)


def test_merging_values_of_two_deliberations_is_refused(deliberation, mo):
    a, _ = value_with_card(deliberation, "One value here")
    other, _ = value_with_card(DeliberationFactory(), "Another value there")
    with pytest.raises(services.ModerationError):
        services.merge_values(actor=mo, source=a, target=other)


def test_a_merge_queues_a_new_scoring_once_committed(
    deliberation, mo, two_duplicates, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(pipeline, "_send", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        services.merge_values(actor=mo, source=two_duplicates["a"], target=two_duplicates["b"])
    job = PipelineJob.objects.get(deliberation=deliberation)
    assert job.kind == PipelineJob.Kind.SCORE and sent == [job]


def test_splitting_a_card_gives_it_a_value_of_its_own_and_undo_folds_it_back(deliberation, mo):
    value, first = value_with_card(deliberation, "Respect her choice")
    second = ValuesCardFactory(deliberation=deliberation, title="Respecting autonomy")
    ValuesCard.objects.filter(pk=second.pk).update(canonical=value)
    action = services.split_card(actor=mo, card=first, reason="different value")
    first.refresh_from_db()
    value.refresh_from_db()
    new = first.canonical
    assert new != value and new.title == "Respect her choice"
    assert value.representative == second and value.title == "Respecting autonomy"
    assert DedupDecision.objects.get(card=first, undone_at__isnull=True).method == "moderator"

    services.undo(actor=mo, action=action)
    first.refresh_from_db()
    value.refresh_from_db()
    new.refresh_from_db()
    assert first.canonical == value
    assert value.representative == first and value.title == "Respect her choice"
    assert DedupDecision.objects.get(card=first, undone_at__isnull=True).method == "new_value"
    assert new.merged_into == value  # kept as a row, out of sight


def test_the_only_card_of_a_value_cannot_be_split_out(deliberation, mo):
    _value, card = value_with_card(deliberation, "Respect her choice")
    with pytest.raises(services.ModerationError):
        services.split_card(actor=mo, card=card)


# --- Several moderators on one queue ------------------------------------------------------------


def test_of_two_moderators_claiming_one_item_only_one_gets_it(deliberation, mo, max_):
    _value, card = value_with_card(deliberation, "Quiet presence")
    flag = ModerationFlagFactory(target=card)
    assert services.claim(flag_id=flag.pk, user=mo) is True
    assert services.claim(flag_id=flag.pk, user=max_) is False
    flag.refresh_from_db()
    assert flag.claimed_by == mo
    with pytest.raises(services.ModerationError):
        services.hide(actor=max_, target=card, flag=flag)
    card.refresh_from_db()
    assert card.approval == Approval.APPROVED
    assert not ModerationAction.objects.exists()


def test_claim_next_gives_two_moderators_two_different_items(deliberation, mo, max_):
    flags = [
        ModerationFlagFactory(target=value_with_card(deliberation, f"Value {n} here")[1])
        for n in range(3)
    ]
    queue = ModerationFlag.objects.filter(deliberation=deliberation)
    first = services.claim_next(user=mo, flags=queue)
    second = services.claim_next(user=max_, flags=queue)
    assert first == flags[0] and second == flags[1]


def test_a_claim_left_too_long_may_be_taken_over(deliberation, mo, max_, settings):
    settings.MODERATION_CLAIM_MINUTES = 10
    _value, card = value_with_card(deliberation, "Quiet presence")
    flag = ModerationFlagFactory(target=card)
    services.claim(flag_id=flag.pk, user=mo)
    ModerationFlag.objects.filter(pk=flag.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=11)
    )
    assert services.claim(flag_id=flag.pk, user=max_) is True


def test_an_item_dealt_with_cannot_be_dealt_with_again(deliberation, mo, max_):
    _value, card = value_with_card(deliberation, "Quiet presence")
    flag = ModerationFlagFactory(target=card)
    services.approve(actor=mo, target=card, flag=flag)
    with pytest.raises(services.ModerationError):
        services.hide(actor=max_, target=card, flag=flag)
    assert services.claim(flag_id=flag.pk, user=max_) is False


def test_releasing_a_claim_puts_the_item_back_in_the_queue(deliberation, mo, max_):
    _value, card = value_with_card(deliberation, "Quiet presence")
    flag = ModerationFlagFactory(target=card)
    services.claim(flag_id=flag.pk, user=mo)
    assert services.release(flag_id=flag.pk, user=max_) is False
    assert services.release(flag_id=flag.pk, user=mo) is True
    assert services.claim(flag_id=flag.pk, user=max_) is True


# --- Strict mode --------------------------------------------------------------------------------


def test_in_strict_mode_an_unapproved_value_is_in_no_vote_and_no_story_until_approved(mo):
    deliberation = DeliberationFactory(moderation_mode=Deliberation.ModerationMode.STRICT)
    staff("mo", deliberation, MODERATOR)
    question = QuestionFactory(deliberation=deliberation)
    pending, card = value_with_card(
        deliberation, "Pending value", question=question, approval=Approval.PENDING
    )
    approved = [
        value_with_card(deliberation, f"Approved value {n}", question=question)[0] for n in range(2)
    ]
    ada = ParticipantFactory(deliberation=deliberation)
    HypothesisFactory(deliberation=deliberation, from_value=approved[0], to_value=pending)
    assert pending not in participation.vote_candidates(participant=ada, question=question)
    assert participation.routing_order(ada) == []

    services.approve(actor=mo, target=card)
    assert pending in participation.vote_candidates(participant=ada, question=question)
    assert len(participation.routing_order(ada)) == 1


def test_a_card_confirmed_in_strict_mode_waits_in_the_queue(django_capture_on_commit_callbacks):
    from elicit.cards import CardDraft
    from elicit.services import confirm_card

    deliberation = DeliberationFactory(moderation_mode=Deliberation.ModerationMode.STRICT)
    interview = InterviewFactory(participant__deliberation=deliberation)
    with django_capture_on_commit_callbacks(execute=True):
        card = confirm_card(interview=interview, draft=CardDraft(**NEW_WORDING))
    assert card.approval == Approval.PENDING
    flag = ModerationFlag.objects.get(object_id=card.pk, reason="awaiting_approval")
    assert flag.state == State.OPEN and flag.deliberation == deliberation
    assert Interview.objects.get(pk=interview.pk).status == Interview.Status.COMPLETED


# --- Reports ------------------------------------------------------------------------------------


def test_a_participant_reports_a_value_once(deliberation):
    value, _ = value_with_card(deliberation, "Quiet presence")
    ada = ParticipantFactory(deliberation=deliberation)
    assert services.report(reporter=ada, target=value, reason="offensive") is True
    assert services.report(reporter=ada, target=value, reason="nonsense") is False
    flag = ModerationFlag.objects.get()
    assert (flag.source, flag.reason, flag.reporter) == ("report", "offensive", ada)
    with pytest.raises(services.ModerationError):
        services.report(reporter=ada, target=value, reason="boring")


@pytest.mark.django_db(transaction=True)
def test_two_moderators_claiming_one_item_at_the_same_moment_do_not_both_get_it():
    """Real concurrency: two connections race on the same row. Only PostgreSQL runs writers in
    parallel (SQLite serialises them, which the test above covers)."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    deliberation = DeliberationFactory()
    moderators = [staff(name, deliberation, MODERATOR) for name in ("mo", "max")]
    _value, card = value_with_card(deliberation, "Quiet presence")
    flag = ModerationFlagFactory(target=card)
    for _round in range(10):
        ModerationFlag.objects.filter(pk=flag.pk).update(
            state=State.OPEN, claimed_by=None, claimed_at=None
        )
        barrier = threading.Barrier(2)
        results: dict[str, bool] = {}

        def race(user, barrier=barrier, results=results):
            try:
                barrier.wait()
                results[user.username] = services.claim(flag_id=flag.pk, user=user)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=race, args=(user,)) for user in moderators]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [False, True]
        winner = ModerationFlag.objects.get(pk=flag.pk).claimed_by.username
        assert results[winner] is True


def test_undoing_a_merge_leaves_a_card_split_out_since_where_it_is(
    deliberation, mo, two_duplicates
):
    a, b = two_duplicates["a"], two_duplicates["b"]
    card = ValuesCard.objects.get(canonical=a)
    merge = services.merge_values(actor=mo, source=a, target=b)
    split = services.split_card(actor=mo, card=card, reason="its own value after all")
    services.undo(actor=mo, action=merge)
    card.refresh_from_db()
    assert card.canonical_id == split.after["new_value"]
    assert DedupDecision.objects.get(card=card, undone_at__isnull=True).canonical == card.canonical
    a.refresh_from_db()
    assert a.merged_into is None


def test_the_match_step_offers_no_value_worded_by_a_card_a_moderator_hid(mo):
    """'Is one of these your value?' puts other participants' values before the participant:
    a value whose wording comes from a hidden card is not offered, as in the vote and stories."""
    from graph.services import closest_values

    deliberation = DeliberationFactory()
    staff("mo", deliberation, MODERATOR)
    question = QuestionFactory(deliberation=deliberation)
    value, card = value_with_card(deliberation, "Honest facts about violence", question=question)
    mine = ValuesCardFactory(
        deliberation=deliberation,
        question=question,
        participant=ParticipantFactory(deliberation=deliberation),
        title="Honest facts about violence",
    )
    assert value in [n.value for n in closest_values(card=mine)]

    services.hide(actor=mo, target=card, reason="abusive wording")
    assert value not in [n.value for n in closest_values(card=mine)]

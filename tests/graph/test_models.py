"""Graph-side constraints: an edge is stored once, a person judges a pair once, a card has one
deduplication decision in force."""

import pytest
from django.utils import timezone

from graph.models import DedupDecision, ScoringRun, UpgradeHypothesis, UpgradeJudgment
from tests.factories import (
    CanonicalValueFactory,
    HypothesisFactory,
    ParticipantFactory,
    ValuesCardFactory,
    refused,
)

pytestmark = pytest.mark.django_db


def judge(participant, hypothesis, verdict="upgrade"):
    return UpgradeJudgment.objects.create(
        participant=participant,
        hypothesis=hypothesis,
        context=hypothesis.context,
        pair_key=hypothesis.pair_key,
        verdict=verdict,
    )


def test_an_edge_exists_once_per_context_and_never_from_a_value_to_itself():
    hypothesis = HypothesisFactory()
    assert refused(
        lambda: UpgradeHypothesis.objects.create(
            deliberation=hypothesis.deliberation,
            context=hypothesis.context,
            from_value=hypothesis.from_value,
            to_value=hypothesis.to_value,
        )
    )
    assert refused(
        lambda: UpgradeHypothesis.objects.create(
            deliberation=hypothesis.deliberation,
            context=hypothesis.context,
            from_value=hypothesis.from_value,
            to_value=hypothesis.from_value,
        )
    )


def test_a_hypothesis_and_its_reverse_share_a_pair_key():
    forward = HypothesisFactory()
    reverse = HypothesisFactory(
        deliberation=forward.deliberation,
        context=forward.context,
        from_value=forward.to_value,
        to_value=forward.from_value,
        is_control=True,
    )
    assert forward.pair_key == reverse.pair_key


def test_a_participant_never_judges_the_same_pair_twice_in_a_context_in_either_direction():
    forward = HypothesisFactory()
    reverse = HypothesisFactory(
        deliberation=forward.deliberation,
        context=forward.context,
        from_value=forward.to_value,
        to_value=forward.from_value,
    )
    ada = ParticipantFactory(deliberation=forward.deliberation)
    judge(ada, forward)
    assert refused(lambda: judge(ada, forward, "not_upgrade"))
    assert refused(lambda: judge(ada, reverse))
    bo = ParticipantFactory(deliberation=forward.deliberation)
    judge(bo, reverse)


def test_a_card_has_one_deduplication_decision_in_force():
    card = ValuesCardFactory()
    value = CanonicalValueFactory(deliberation=card.deliberation)
    decision = DedupDecision.objects.create(card=card, canonical=value, method="new_value")
    assert refused(
        lambda: DedupDecision.objects.create(card=card, canonical=value, method="auto_match")
    )
    decision.undone_at = timezone.now()
    decision.save()
    DedupDecision.objects.create(card=card, canonical=value, method="moderator")


def test_a_value_cannot_be_merged_into_itself():
    value = CanonicalValueFactory()
    value.merged_into = value
    assert refused(value.save)


def test_scoring_run_names_are_unique_per_deliberation():
    value = CanonicalValueFactory()
    ScoringRun.objects.create(deliberation=value.deliberation, name="final", code_version="x")
    assert refused(
        lambda: ScoringRun.objects.create(
            deliberation=value.deliberation, name="final", code_version="y"
        )
    )
    ScoringRun.objects.create(deliberation=value.deliberation, code_version="x")
    ScoringRun.objects.create(deliberation=value.deliberation, code_version="x")

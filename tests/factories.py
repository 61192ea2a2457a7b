"""factory_boy factories for the domain model. Personas used across the tests:
a participant "Ada" who answers honestly, "Bo" another participant, and "Rhea" a researcher."""

import factory
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from elicit import models as e
from graph import models as g


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")


class DeliberationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.Deliberation

    slug = factory.Sequence(lambda n: f"deliberation-{n}")
    title = factory.Sequence(lambda n: f"Deliberation {n}")
    status = e.Deliberation.Status.OPEN


class ContextFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.Context

    deliberation = factory.SubFactory(DeliberationFactory)
    text = factory.Sequence(lambda n: f"When situation {n} arises")


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.Question

    deliberation = factory.SubFactory(DeliberationFactory)
    slug = factory.Sequence(lambda n: f"question-{n}")
    text = factory.Sequence(lambda n: f"What should the assistant do in case {n}?")


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.Participant

    deliberation = factory.SubFactory(DeliberationFactory)


class InterviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.Interview

    participant = factory.SubFactory(ParticipantFactory)
    question = factory.SubFactory(
        QuestionFactory, deliberation=factory.SelfAttribute("..participant.deliberation")
    )
    interviewer = e.Interview.Interviewer.SCRIPTED
    prompt_version = "scripted-v1"


class ValuesCardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = e.ValuesCard

    deliberation = factory.SubFactory(DeliberationFactory)
    question = factory.SubFactory(
        QuestionFactory, deliberation=factory.SelfAttribute("..deliberation")
    )
    title = factory.Sequence(lambda n: f"Value number {n}")
    description = "Attending to what matters for the person in front of me."
    policies = factory.LazyFunction(
        lambda: [
            "MOMENTS when the person hesitates",
            "OPPORTUNITIES to ask what they need",
            "FEELINGS the person has not yet named",
        ]
    )


class CanonicalValueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = g.CanonicalValue

    deliberation = factory.SubFactory(DeliberationFactory)
    title = factory.Sequence(lambda n: f"Canonical value {n}")
    description = "A value several participants share."
    policies = factory.LazyFunction(lambda: ["MOMENTS when it matters"])


class HypothesisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = g.UpgradeHypothesis

    deliberation = factory.SubFactory(DeliberationFactory)
    context = factory.SubFactory(
        ContextFactory, deliberation=factory.SelfAttribute("..deliberation")
    )
    from_value = factory.SubFactory(
        CanonicalValueFactory, deliberation=factory.SelfAttribute("..deliberation")
    )
    to_value = factory.SubFactory(
        CanonicalValueFactory, deliberation=factory.SelfAttribute("..deliberation")
    )
    story = "Someone who once cared about A came to see that B mattered more."


def refused(create) -> bool:
    """True when the database refuses what `create` does (a constraint holds)."""
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def _flag_deliberation(flag):
    target = flag.target
    if isinstance(target, e.Message):
        return target.interview.participant.deliberation
    if isinstance(target, g.UpgradeJudgment):
        return target.participant.deliberation
    return target.deliberation


def _content_type(flag):
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(flag.target)


class ModerationFlagFactory(factory.django.DjangoModelFactory):
    """A flag on `target` (required): `ModerationFlagFactory(target=card)`."""

    class Meta:
        model = e.ModerationFlag
        exclude = ["target"]

    target = None
    deliberation = factory.LazyAttribute(_flag_deliberation)
    content_type = factory.LazyAttribute(_content_type)
    object_id = factory.LazyAttribute(lambda f: f.target.pk)
    source = e.ModerationFlag.Source.AUTOMATIC
    reason = "harassment"


def staff(username: str, deliberation, role: str):
    """A user assigned to the deliberation as "moderator" or "researcher" ("Mo", "Rhea")."""
    user = UserFactory(username=username)
    e.StaffAssignment.objects.get_or_create(user=user, deliberation=deliberation, role=role)
    return user


class JudgmentFactory(factory.django.DjangoModelFactory):
    """An answered judgment of a hypothesis (verdict "upgrade" unless told)."""

    class Meta:
        model = g.UpgradeJudgment

    hypothesis = factory.SubFactory(HypothesisFactory)
    participant = factory.SubFactory(
        ParticipantFactory, deliberation=factory.SelfAttribute("..hypothesis.deliberation")
    )
    context = factory.SelfAttribute("hypothesis.context")
    pair_key = factory.SelfAttribute("hypothesis.pair_key")
    verdict = g.UpgradeJudgment.Verdict.UPGRADE
    answered_at = factory.LazyFunction(timezone.now)

"""Setting up a deliberation: create it, and save its questions, contexts and demographic fields.

Contexts are identified by their text within a deliberation: writing the same "When ..." line
under two questions shares one context between them, which is what makes values comparable
across questions. A context that no question uses any more is deleted, unless upgrade stories
were written for it (those, and the judgments on them, are kept).
"""

from __future__ import annotations

import dataclasses

from django.db import transaction
from django.utils.text import slugify

from elicit import audit
from elicit.models import Context, Deliberation, Question, StaffAssignment

# Settings that decide what participants see and what moderators must do: a change to them is
# written to the audit log (the moderation log shows it), with who made it.
MODERATION_SETTINGS = ("moderation_mode", "block_flagged_messages")


@dataclasses.dataclass(frozen=True)
class QuestionSpec:
    pk: int | None
    text: str
    slug: str
    is_active: bool
    contexts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    choices: tuple[str, ...]
    required: bool

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "choices": list(self.choices),
            "required": self.required,
        }


def unique_slug(title: str) -> str:
    base = slugify(title)[:50] or "deliberation"
    slug, n = base, 2
    while Deliberation.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def create_deliberation(*, title: str, slug: str = "", user) -> Deliberation:
    """A draft deliberation; its creator becomes its researcher."""
    deliberation = Deliberation.objects.create(
        title=title, slug=slug or unique_slug(title), status=Deliberation.Status.DRAFT
    )
    StaffAssignment.objects.create(
        user=user, deliberation=deliberation, role=StaffAssignment.Role.RESEARCHER
    )
    return deliberation


@transaction.atomic
def save_settings(*, deliberation: Deliberation, actor, via: str) -> None:
    """Save the deliberation as a form has set it, and log a change of its moderation settings
    (before and after, who, and *via* which page). The state before is read from the locked
    row, not from the form, so two people saving at once are both logged truthfully."""
    before = (
        Deliberation.objects.select_for_update()
        .values(*MODERATION_SETTINGS)
        .get(pk=deliberation.pk)
    )
    deliberation.save()
    changed = [name for name in MODERATION_SETTINGS if getattr(deliberation, name) != before[name]]
    if changed:
        audit.record(
            actor=actor,
            action="moderation_settings",
            target=deliberation,
            deliberation_id=deliberation.pk,
            reason=via,
            before={name: before[name] for name in changed},
            after={name: getattr(deliberation, name) for name in changed},
        )


@transaction.atomic
def save_questions(*, deliberation: Deliberation, questions: list[QuestionSpec]) -> None:
    """Create or update the questions in the given order, with their contexts by text.

    Questions are never deleted here (interviews refer to them): one that should no longer be
    asked is made inactive."""
    contexts = {c.text: c for c in Context.objects.filter(deliberation=deliberation)}
    existing = {q.pk: q for q in Question.objects.filter(deliberation=deliberation)}
    for position, spec in enumerate(questions):
        question = existing.get(spec.pk) if spec.pk else None
        if question is None:
            question = Question(deliberation=deliberation)
        question.text = spec.text
        question.slug = spec.slug
        question.is_active = spec.is_active
        question.position = position
        question.save()
        chosen = []
        for text in spec.contexts:
            if text not in contexts:
                contexts[text] = Context.objects.create(deliberation=deliberation, text=text)
            chosen.append(contexts[text])
        question.contexts.set(chosen)
    Context.objects.filter(
        deliberation=deliberation, questions__isnull=True, hypotheses__isnull=True
    ).delete()


@transaction.atomic
def save_demographic_fields(*, deliberation: Deliberation, fields: list[FieldSpec]) -> None:
    deliberation.demographic_fields = [field.as_dict() for field in fields]
    deliberation.save(update_fields=["demographic_fields", "updated_at"])

"""Business logic of the graph side: which values exist, how cards join them.

Typed functions with keyword-only arguments, atomic, safe to run twice; background work is
queued only when the transaction commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from elicit import llm
from elicit.models import Deliberation, ValuesCard
from graph import embeddings
from graph.models import CanonicalValue, DedupDecision, PipelineJob

logger = logging.getLogger(__name__)

JUDGE_TOOL = {
    "type": "function",
    "function": {
        "name": "same_value",
        "description": "Say whether the two values cards express the same value.",
        "parameters": {
            "type": "object",
            "properties": {
                "same": {"type": "boolean"},
                "reason": {"type": "string", "description": "One or two sentences."},
            },
            "required": ["same", "reason"],
            "additionalProperties": False,
        },
    },
}


def visible_values(deliberation: Deliberation) -> QuerySet[CanonicalValue]:
    """Values others may see: not hidden, not merged away, and in strict moderation mode only
    those whose wording comes from an approved card."""
    values = CanonicalValue.objects.filter(
        deliberation=deliberation, hidden_at__isnull=True, merged_into__isnull=True
    )
    if deliberation.moderation_mode == Deliberation.ModerationMode.STRICT:
        values = values.filter(
            Q(representative__isnull=True)
            | Q(representative__approval=ValuesCard.Approval.APPROVED)
        )
    return values


def card_text(card: ValuesCard) -> str:
    return embeddings.value_text(card.title, card.description, card.policies)


def value_text(value: CanonicalValue) -> str:
    return embeddings.value_text(value.title, value.description, value.policies)


@dataclass(frozen=True)
class Neighbour:
    value: CanonicalValue
    similarity: float


def closest_values(*, card: ValuesCard, limit: int = 3, minimum: float = 0.15) -> list[Neighbour]:
    """The canonical values nearest to a card, most similar first."""
    # A value made from this very card (deduplication may already have run) is not "another
    # participant's value".
    values = list(visible_values(card.deliberation).exclude(representative=card).order_by("id"))
    ranked = embeddings.nearest(card_text(card), [value_text(v) for v in values], k=limit)
    return [Neighbour(values[i], s) for i, s in ranked if s >= minimum]


LINK, JUDGE, NEW = "link", "judge", "new"


def route(similarity: float | None, thresholds: embeddings.Thresholds) -> str:
    """Where a card goes, given its similarity to the nearest canonical value (None: there is
    no value yet): linked automatically, to the judge, or a new value. bench/dedup.py measures
    this very function."""
    if similarity is None:
        return NEW
    if similarity >= thresholds.same:
        return LINK
    if similarity >= thresholds.different:
        return JUDGE
    return NEW


def new_value_from(card: ValuesCard) -> CanonicalValue:
    return CanonicalValue.objects.create(
        deliberation=card.deliberation,
        title=card.title,
        description=card.description,
        policies=list(card.policies),
        representative=card,
    )


def _link(
    card: ValuesCard,
    value: CanonicalValue,
    *,
    method: str,
    similarity: float | None,
    nearest: CanonicalValue | None = None,
    reason: str = "",
    model: str = "",
    prompt_version: str = "",
    job: PipelineJob | None = None,
) -> DedupDecision:
    decision = DedupDecision.objects.create(
        card=card,
        canonical=value,
        method=method,
        similarity=similarity,
        nearest=nearest,
        reason=reason,
        model=model,
        prompt_version=prompt_version,
        job=job,
    )
    ValuesCard.objects.filter(pk=card.pk).update(canonical=value)
    card.canonical = value
    return decision


@transaction.atomic
def choose_value(*, card: ValuesCard, value: CanonicalValue | None) -> None:
    """The participant said "that is my value" (value) or kept theirs distinct (None). Their
    own choice replaces an automatic decision taken before they answered."""
    card = ValuesCard.objects.select_for_update().get(pk=card.pk)
    ValuesCard.objects.filter(pk=card.pk).update(chosen_canonical=value)
    if value is None:
        transaction.on_commit(lambda: queue_deduplication(card.pk))
        return
    active = DedupDecision.objects.filter(card=card, undone_at__isnull=True).first()
    if active is not None:
        if active.canonical_id == value.pk:
            return
        active.undone_at = timezone.now()
        active.save(update_fields=["undone_at"])
    _link(
        card,
        value,
        method=DedupDecision.Method.PARTICIPANT,
        similarity=None,
        reason="The participant said this is their value.",
    )


def queue_deduplication(card_id: int, *, countdown: int = 0) -> None:
    from graph.tasks import deduplicate_card

    deduplicate_card.apply_async(args=[card_id], countdown=countdown)


def deduplicate(*, card_id: int, job: PipelineJob | None = None) -> DedupDecision | None:
    """Link a card to the canonical value it expresses, or make it a new one. Clear matches
    link automatically, clear non-matches become new values, and only the ambiguous band goes
    to the language-model judge. Every decision records its method, similarity and reason.
    Running it twice decides once."""
    card = ValuesCard.objects.select_related("deliberation").filter(pk=card_id).first()
    if card is None or DedupDecision.objects.filter(card=card, undone_at__isnull=True).exists():
        return None
    engine = embeddings.backend()
    values = list(visible_values(card.deliberation).order_by("id"))
    ranked = embeddings.nearest(card_text(card), [value_text(v) for v in values], k=1)
    best, similarity = (values[ranked[0][0]], ranked[0][1]) if ranked else (None, 0.0)
    thresholds = engine.thresholds
    decision = route(similarity if best is not None else None, thresholds)
    verdict: tuple[bool, str, str, str] | None = None
    if decision == JUDGE and llm.is_configured():
        verdict = _judge(card, best)
    with transaction.atomic():
        card = ValuesCard.objects.select_for_update().get(pk=card.pk)
        if DedupDecision.objects.filter(card=card, undone_at__isnull=True).exists():
            return None
        if decision == LINK:
            return _link(
                card,
                best,
                method=DedupDecision.Method.AUTO_MATCH,
                similarity=similarity,
                nearest=best,
                job=job,
                reason=f"{engine.name} similarity {similarity:.3f} >= {thresholds.same}",
            )
        if verdict is not None:
            same, reason, model, version = verdict
            target = best if same else new_value_from(card)
            return _link(
                card,
                target,
                method=DedupDecision.Method.LLM_JUDGE,
                similarity=similarity,
                nearest=best,
                reason=reason,
                model=model,
                prompt_version=version,
                job=job,
            )
        if best is None:
            reason = "No canonical value existed yet."
        elif similarity < thresholds.different:
            reason = f"{engine.name} similarity {similarity:.3f} < {thresholds.different}"
        else:
            reason = (
                f"{engine.name} similarity {similarity:.3f} is ambiguous and no judge "
                "is configured: kept distinct rather than risk a wrong merge."
            )
        return _link(
            card,
            new_value_from(card),
            method=DedupDecision.Method.NEW_VALUE,
            similarity=similarity if best else None,
            nearest=best,
            reason=reason,
            job=job,
        )


def _judge(card: ValuesCard, value: CanonicalValue) -> tuple[bool, str, str, str]:
    """The language model's structured verdict on an ambiguous pair."""
    prompt = llm.load_prompt("dedup-judge")
    answer = llm.call_tool(
        [
            {"role": "system", "content": prompt.text},
            {
                "role": "user",
                "content": "Card A:\n"
                + llm.fence(card_text(card))
                + "\n\nCard B:\n"
                + llm.fence(value_text(value)),
            },
        ],
        tool=JUDGE_TOOL,
    )
    same = answer.arguments.get("same")
    if not isinstance(same, bool):
        raise llm.LLMError("invalid", "The judge did not answer true or false.")
    reason = str(answer.arguments.get("reason", ""))[:1000]
    return same, reason, answer.model, prompt.version

"""Business logic of the graph side: which values exist, how cards join them.

Typed functions with keyword-only arguments, atomic, safe to run twice; background work is
queued only when the transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from elicit import llm
from elicit.models import Deliberation, ValuesCard
from graph import embeddings
from graph.models import CanonicalValue, CardEmbedding, DedupDecision, PipelineJob

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


def shown_values(deliberation: Deliberation) -> QuerySet[CanonicalValue]:
    """Values that may be put before participants: visible (graph.services.visible_values), not
    worded by a card a moderator hid, and in strict moderation mode holding an approved card."""
    values = visible_values(deliberation).exclude(
        representative__approval=ValuesCard.Approval.HIDDEN
    )
    if deliberation.moderation_mode == Deliberation.ModerationMode.STRICT:
        approved = ValuesCard.objects.filter(
            canonical=OuterRef("pk"), approval=ValuesCard.Approval.APPROVED
        )
        values = values.filter(Exists(approved))
    return values


def card_text(card: ValuesCard) -> str:
    return embeddings.value_text(card.title, card.description, card.policies)


def value_text(value: CanonicalValue) -> str:
    return embeddings.value_text(value.title, value.description, value.policies)


# --- Vectors of cards and values ---------------------------------------------------------------


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def card_vectors(cards: Sequence[ValuesCard], engine=None):
    """The cards' vectors, one row per card in order. The backend is asked only for cards whose
    current wording has no stored vector (CardEmbedding, keyed by backend, model and a hash of
    the text): each card is embedded once per wording, however many cards come after it."""
    engine = engine or embeddings.backend()
    texts = [card_text(c) for c in cards]
    hashes = [text_hash(t) for t in texts]
    stored = {
        card_id: (digest, bytes(vector), dimensions)
        for card_id, digest, vector, dimensions in CardEmbedding.objects.filter(
            card__in=[c.pk for c in cards], backend=engine.name, model=engine.model
        ).values_list("card_id", "text_hash", "vector", "dimensions")
    }
    blobs: list[bytes] = [b"" for _ in cards]
    fresh = []
    dimensions = 0
    for i, card in enumerate(cards):
        digest, blob, dimensions_stored = stored.get(card.pk, ("", b"", 0))
        if digest == hashes[i]:
            blobs[i], dimensions = blob, dimensions_stored
        else:
            fresh.append(i)
    if fresh:
        matrix = engine.embed([texts[i] for i in fresh])
        dimensions = matrix.shape[1]
        for row, i in enumerate(fresh):
            blobs[i] = embeddings.to_bytes(engine, matrix[row])
            # update_or_create: two workers may embed the same card; both store the same.
            CardEmbedding.objects.update_or_create(
                card_id=cards[i].pk,
                backend=engine.name,
                model=engine.model,
                defaults=dict(dimensions=dimensions, vector=blobs[i], text_hash=hashes[i]),
            )
    return embeddings.from_bytes(engine, blobs, dimensions)


def _member_cards(ids: Sequence[int]) -> QuerySet[ValuesCard]:
    """The cards behind the values `ids` (including those of values merged into them), hidden
    cards left out, oldest first."""
    return (
        ValuesCard.objects.filter(Q(canonical__in=ids) | Q(canonical__merged_into__in=ids))
        .exclude(approval=ValuesCard.Approval.HIDDEN)
        .order_by("created_at", "id")
    )


def _members(values: Sequence[CanonicalValue]) -> dict[int, list[ValuesCard]]:
    """The cards behind each value (including those of values merged into it), hidden cards
    left out, oldest first."""
    ids = [v.pk for v in values]
    members: dict[int, list[ValuesCard]] = {pk: [] for pk in ids}
    for card in _member_cards(ids).select_related("canonical"):
        owner = card.canonical_id if card.canonical_id in members else card.canonical.merged_into_id
        members[owner].append(card)
    return members


def _fresh_value_vectors(values: Sequence[CanonicalValue], engine):
    """The centroids of `values` computed from their cards (see value_vectors), with the
    wording print of each value they were computed from."""
    members = _members(values)
    cards = [card for v in values for card in members[v.pk]]
    bare = [v for v in values if not members[v.pk]]
    parts = []
    if cards:
        parts.append(card_vectors(cards, engine))
    if bare:
        parts.append(engine.embed([value_text(v) for v in bare]))
    matrix = embeddings.stack(parts)
    groups, start, extra = [], 0, len(cards)
    for v in values:
        n = len(members[v.pk])
        if n:
            groups.append(range(start, start + n))
            start += n
        else:
            groups.append([extra])
            extra += 1
    prints = [
        _print(engine, v, [(c.pk, text_hash(card_text(c))) for c in members[v.pk]]) for v in values
    ]
    return embeddings.centroids(matrix, groups), prints


def _print(engine, value: CanonicalValue, wordings: list[tuple[int, str]]) -> tuple:
    """What a value's centroid is a function of: the backend, and its cards with their wording
    in order (for a value without cards, its own wording). Two values with the same print
    have the same centroid, whatever their ids."""
    return (engine.name, engine.model, tuple(wordings) or text_hash(value_text(value)))


def _wordings(values: Sequence[CanonicalValue]) -> dict[int, list[tuple[int, str]]]:
    """(card id, hash of its wording) of the cards behind each value, as `_members` gives
    them: a query of a few columns, without the cards' vectors."""
    ids = [v.pk for v in values]
    wordings: dict[int, list[tuple[int, str]]] = {pk: [] for pk in ids}
    rows = _member_cards(ids).values_list(
        "id", "canonical_id", "canonical__merged_into_id", "title", "description", "policies"
    )
    for pk, canonical_id, merged_into_id, title, description, policies in rows:
        owner = canonical_id if canonical_id in wordings else merged_into_id
        digest = text_hash(embeddings.value_text(title, description, policies))
        wordings[owner].append((pk, digest))
    return wordings


# Centroids already computed in this process: value id -> (print, stored row, dimensions). A
# value's centroid is computed again only when its print changed (a card joined or left it, was
# hidden or reworded), so the match step costs a query of a few columns, not every card's
# vector, once the values are known. Bounded: emptied when it holds CENTROIDS_KEPT values.
_centroids: dict[int, tuple[tuple, bytes, int]] = {}
CENTROIDS_KEPT = 50_000


def value_vectors(values: Sequence[CanonicalValue], engine=None):
    """One unit row per value: the centroid of its cards' vectors, or for a value without
    cards (made by hand) the vector of its own wording."""
    engine = engine or embeddings.backend()
    if not values:
        return None
    wordings = _wordings(values)
    # Read once: another thread may empty the cache meanwhile.
    kept = {v.pk: _centroids.get(v.pk) for v in values}
    stale = [v for v in values if (kept[v.pk] or ((),))[0] != _print(engine, v, wordings[v.pk])]
    if stale:
        if len(_centroids) + len(stale) > CENTROIDS_KEPT:
            _centroids.clear()
        matrix, prints = _fresh_value_vectors(stale, engine)
        for i, value in enumerate(stale):
            # Stored with the print of the cards it was computed from, read just now.
            entry = (prints[i], embeddings.to_bytes(engine, matrix[i]), matrix.shape[1])
            kept[value.pk] = _centroids[value.pk] = entry
    rows = [kept[v.pk] for v in values]
    return embeddings.from_bytes(engine, [row[1] for row in rows], rows[0][2])


@dataclass(frozen=True)
class Neighbour:
    value: CanonicalValue
    similarity: float


def _neighbours(card: ValuesCard, values: list[CanonicalValue], engine) -> list[Neighbour]:
    """Every value with the card's similarity to it, most similar first (ties: oldest)."""
    if not values:
        return []
    sims = embeddings.similarities(card_vectors([card], engine)[0], value_vectors(values, engine))
    return [Neighbour(values[i], float(sims[i])) for i in embeddings.ranked(sims)]


def closest_values(*, card: ValuesCard, limit: int = 3, minimum: float = 0.15) -> list[Neighbour]:
    """The canonical values nearest to a card, most similar first: only values that may be put
    before participants (`shown_values`: in strict moderation, approved ones)."""
    # A value made from this very card (deduplication may already have run) is not "another
    # participant's value".
    values = list(shown_values(card.deliberation).exclude(representative=card).order_by("id"))
    ranked = _neighbours(card, values, embeddings.backend())[:limit]
    return [n for n in ranked if n.similarity >= minimum]


def refresh_wording(value: CanonicalValue) -> CanonicalValue:
    """Give the value the wording of its best card: the one closest to the centroid of its
    cards, i.e. the most typical way its participants put it (approved cards first in strict
    moderation, so that the value stays visible). A value worded by hand (made by a
    moderator, or edited since: its wording is not its representative card's) keeps it."""
    card = value.representative
    if card is None or value_text(value) != card_text(card):
        return value
    cards = _members([value])[value.pk]
    if value.deliberation.moderation_mode == Deliberation.ModerationMode.STRICT:
        approved = [c for c in cards if c.approval == ValuesCard.Approval.APPROVED]
        cards = approved or cards
    if not cards:
        return value
    best = cards[embeddings.most_central(card_vectors(cards))]
    if best.pk != value.representative_id:
        value.title, value.description = best.title, best.description
        value.policies, value.representative = list(best.policies), best
        value.save(update_fields=["title", "description", "policies", "representative"])
    return value


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


def to_judge(ranked: Sequence[float], thresholds: embeddings.Thresholds) -> int:
    """In the ambiguous band, how many of the nearest values the judge is asked about, in
    turn, given the similarities from the most similar down: up to DEDUP_JUDGE_CANDIDATES, as
    long as they are not clearly different. The nearest value is not always the card's (an
    atypical card of a popular value may sit closer to a neighbour), and a second question
    costs less than a split value."""
    limit = settings.DEDUP_JUDGE_CANDIDATES
    return sum(1 for similarity in ranked[:limit] if similarity >= thresholds.different)


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
    refresh_wording(value)
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


class UndoError(Exception):
    """A decision that cannot be undone as asked; the message says why."""


def created_by(decision: DedupDecision) -> bool:
    """Whether the decision made its card a new value (rather than joining one): always for
    "clearly different"; for a judge's or moderator's decision, when it is the first decision
    on its value and that value is not the nearest one it saw."""
    Method = DedupDecision.Method
    if decision.method == Method.NEW_VALUE:
        return True
    if decision.method not in (Method.LLM_JUDGE, Method.MODERATOR):
        return False
    if decision.canonical_id == decision.nearest_id:
        return False
    first = DedupDecision.objects.filter(canonical=decision.canonical_id).order_by("id").first()
    return first is not None and first.pk == decision.pk


@transaction.atomic
def undo_decision(*, decision: DedupDecision, user=None) -> DedupDecision:
    """Undo a deduplication decision that is in force. It is kept, marked undone (when and by
    whom), and replaced by the opposite decision, recorded as a moderator's so that no later
    run takes the undone one again:

    - a card that joined a value it did not create becomes a value of its own;
    - a card that became a new value joins the value the decision found nearest. Its own
      value, if no other card is left in it, is marked merged into that value (so what refers
      to it stays traceable); otherwise it keeps its other cards and takes their best wording.
    """
    decision = DedupDecision.objects.select_for_update().select_related("card").get(pk=decision.pk)
    if decision.undone_at is not None:
        raise UndoError(_("This decision was already undone."))
    card, left = decision.card, decision.canonical
    if created_by(decision):
        target = decision.nearest
        if target is None or not visible_values(card.deliberation).filter(pk=target.pk).exists():
            raise UndoError(
                _("There is no other value to join: the card can only stay a value of its own.")
            )
        reason = "Undid decision %(id)d: joined the nearest value instead of a new one."
    else:
        target = None
        reason = "Undid decision %(id)d: kept distinct as a value of its own."
    decision.undone_at, decision.undone_by = timezone.now(), user
    decision.save(update_fields=["undone_at", "undone_by"])
    replacement = _link(
        card,
        target or new_value_from(card),
        method=DedupDecision.Method.MODERATOR,
        similarity=None,
        nearest=decision.nearest,
        reason=reason % {"id": decision.pk},
    )
    left.refresh_from_db()
    if _members([left])[left.pk]:
        refresh_wording(left)  # if the card carried its wording, the best remaining card does
    elif target is not None:
        left.merged_into = target
        left.save(update_fields=["merged_into"])
    return replacement


def queue_deduplication(card_id: int, *, countdown: int = 0) -> None:
    """Queue the card's deduplication for the workers. With the broker unreachable the card
    stays pending (the participant goes on), and the scheduled pipeline, which deduplicates
    every pending card, takes it later."""
    from config.celery import enqueue
    from graph.tasks import deduplicate_card

    enqueue(deduplicate_card, f"the deduplication of card {card_id}", card_id, countdown=countdown)


def deduplicate(*, card_id: int, job: PipelineJob | None = None) -> DedupDecision | None:
    """Link a card to the canonical value it expresses, or make it a new one. The card is
    compared with each value's centroid (see graph/embeddings.py): clear matches link
    automatically, clear non-matches become new values, and only the ambiguous band goes to
    the language-model judge, asked about the nearest few values in turn. Every decision
    records its method, similarity and reason. Running it twice decides once."""
    card = ValuesCard.objects.select_related("deliberation").filter(pk=card_id).first()
    if card is None or DedupDecision.objects.filter(card=card, undone_at__isnull=True).exists():
        return None
    engine = embeddings.backend()
    thresholds = embeddings.thresholds(engine)
    values = list(visible_values(card.deliberation).order_by("id"))
    neighbours = _neighbours(card, values, engine)
    best = neighbours[0] if neighbours else None
    decision = route(best.similarity if best else None, thresholds)
    verdicts: list[tuple[Neighbour, tuple[bool, str, str, str]]] = []
    if decision == JUDGE and llm.is_configured():
        for neighbour in neighbours[: to_judge([n.similarity for n in neighbours], thresholds)]:
            verdicts.append((neighbour, _judge(card, neighbour.value)))
            if verdicts[-1][1][0]:  # the same value: no need to ask about the next
                break
    with transaction.atomic():
        card = ValuesCard.objects.select_for_update().get(pk=card.pk)
        if DedupDecision.objects.filter(card=card, undone_at__isnull=True).exists():
            return None
        nearest = best.value if best else None
        if decision == LINK:
            return _link(
                card,
                best.value,
                method=DedupDecision.Method.AUTO_MATCH,
                similarity=best.similarity,
                nearest=nearest,
                job=job,
                reason=f"{engine.name} similarity {best.similarity:.3f} >= {thresholds.same}",
            )
        if verdicts:
            judged, (same, reason, model, version) = verdicts[-1]
            if len(verdicts) > 1:  # say what the judge said about the nearer values too
                reason = " ".join(
                    f"[{n.value.title} ({n.similarity:.3f}): "
                    f"{'same' if v[0] else 'different'}] {v[1]}"
                    for n, v in verdicts
                )[:2000]
            return _link(
                card,
                judged.value if same else new_value_from(card),
                method=DedupDecision.Method.LLM_JUDGE,
                similarity=judged.similarity,
                nearest=nearest,
                reason=reason,
                model=model,
                prompt_version=version,
                job=job,
            )
        if best is None:
            reason = "No canonical value existed yet."
        elif best.similarity < thresholds.different:
            reason = f"{engine.name} similarity {best.similarity:.3f} < {thresholds.different}"
        else:
            reason = (
                f"{engine.name} similarity {best.similarity:.3f} is ambiguous and no judge "
                "is configured: kept distinct rather than risk a wrong merge."
            )
        return _link(
            card,
            new_value_from(card),
            method=DedupDecision.Method.NEW_VALUE,
            similarity=best.similarity if best else None,
            nearest=nearest,
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

"""Moderation: the queue of flags, the actions moderators take, and their audit log.

Typed functions with keyword-only arguments, atomic. Every action writes one append-only
`ModerationAction` with the state before and after, detailed enough that `undo` restores the
state exactly; an undo is itself an action that `reverts` the first (once: the database holds
that one-to-one). Nothing is ever deleted: hidden content is kept, banned participants' data
stays, merged values keep their row.

Working a queue with several moderators: a moderator *claims* a flag with a conditional UPDATE
(only an open flag, a flag they already hold, or a claim older than `CLAIM_MINUTES` can be
taken), so two moderators never get the same item; acting on a flag someone else holds, or
that is already resolved, is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from elicit import audit
from elicit.cards import CardDraft, validate_card
from elicit.models import (
    CardRevision,
    Deliberation,
    Message,
    ModerationAction,
    ModerationFlag,
    Participant,
    ValuesCard,
)
from graph import pipeline
from graph.models import (
    CanonicalValue,
    DedupDecision,
    UpgradeHypothesis,
    UpgradeJudgment,
    WisestVote,
    pair_key,
)
from graph.services import new_value_from

State = ModerationFlag.State
Approval = ValuesCard.Approval
OPEN_STATES = (State.OPEN, State.CLAIMED)

# What a participant may report, and the reasons they choose from.
REPORT_REASONS = {
    "offensive": gettext_lazy("This is offensive"),
    "nonsense": gettext_lazy("This is nonsense"),
}


class ModerationError(Exception):
    """An action that cannot be taken as asked; the message says why, for the moderator."""


def claim_minutes() -> int:
    return settings.MODERATION_CLAIM_MINUTES


# --- The audit log ------------------------------------------------------------------------------


def deliberation_of(target) -> int | None:
    """The deliberation id an object belongs to."""
    if isinstance(target, Message):
        return target.interview.participant.deliberation_id
    if isinstance(target, UpgradeJudgment):
        return target.participant.deliberation_id
    return getattr(target, "deliberation_id", None)


def record_action(
    *, actor, action: str, target=None, deliberation_id: int | None = None, **details: Any
) -> ModerationAction:
    """Append one entry to the audit log: `elicit.audit.record`, which takes the same arguments
    (*details*: reason, before, after, reverts), with the deliberation found from *target* when
    it is not given. `actor` None means the system (a pipeline rule, a participant's own
    request). Other features (privacy, exports) call this too."""
    if deliberation_id is None and target is not None:
        deliberation_id = deliberation_of(target)
    return audit.record(
        actor=actor, action=action, target=target, deliberation_id=deliberation_id, **details
    )


# --- Flags and claims ---------------------------------------------------------------------------


def _claimable(user) -> Q:
    stale = timezone.now() - timedelta(minutes=claim_minutes())
    return (
        Q(state=State.OPEN)
        | Q(state=State.CLAIMED, claimed_by=user)
        | Q(state=State.CLAIMED, claimed_at__lt=stale)
        | Q(state=State.CLAIMED, claimed_by__isnull=True)
    )


def claim(*, flag_id: int, user) -> bool:
    """Take a flag to work on it. One conditional UPDATE: of two moderators claiming the same
    flag at once, exactly one gets it. A claim left for `claim_minutes()` may be taken over."""
    return bool(
        ModerationFlag.objects.filter(_claimable(user), pk=flag_id).update(
            state=State.CLAIMED, claimed_by=user, claimed_at=timezone.now()
        )
    )


def release(*, flag_id: int, user) -> bool:
    """Give a claimed flag back to the queue (only the moderator holding it can)."""
    return bool(
        ModerationFlag.objects.filter(pk=flag_id, state=State.CLAIMED, claimed_by=user).update(
            state=State.OPEN, claimed_by=None, claimed_at=None
        )
    )


def claim_next(*, user, flags: QuerySet[ModerationFlag]) -> ModerationFlag | None:
    """Claim the oldest flag of *flags* (the queue as filtered) that nobody else holds."""
    for pk in (
        flags.filter(_claimable(user))
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:50]
    ):
        if claim(flag_id=pk, user=user):
            return ModerationFlag.objects.get(pk=pk)
    return None


def claim_is_live(flag: ModerationFlag) -> bool:
    stale = timezone.now() - timedelta(minutes=claim_minutes())
    return (
        flag.state == State.CLAIMED
        and flag.claimed_by_id is not None
        and flag.claimed_at is not None
        and flag.claimed_at >= stale
    )


def _lock_flag(flag: ModerationFlag, user) -> ModerationFlag:
    """The flag, locked, if this user may act on it now; ModerationError otherwise."""
    flag = ModerationFlag.objects.select_for_update().get(pk=flag.pk)
    if flag.state not in OPEN_STATES:
        raise ModerationError(_("This item was already dealt with."))
    if claim_is_live(flag) and flag.claimed_by_id != user.pk:
        raise ModerationError(_("Another moderator is working on this item."))
    return flag


def _resolve_flags(
    *, target, user, state: str, flag: ModerationFlag | None
) -> dict[str, dict[str, Any]]:
    """Resolve the flag acted on and the other open flags of the same target that nobody else
    holds. Returns their previous state, for the log and for undo."""
    if flag is not None:
        _lock_flag(flag, user)
    flags = ModerationFlag.objects.select_for_update().filter(
        content_type=ContentType.objects.get_for_model(target),
        object_id=target.pk,
        state__in=OPEN_STATES,
    )
    previous: dict[str, dict[str, Any]] = {}
    for other in flags:
        held_by_another = claim_is_live(other) and other.claimed_by_id != user.pk
        if other.pk != getattr(flag, "pk", None) and held_by_another:
            continue
        previous[str(other.pk)] = {"state": other.state}
    ModerationFlag.objects.filter(pk__in=[int(pk) for pk in previous]).update(
        state=state, resolved_at=timezone.now(), claimed_by=user, claimed_at=timezone.now()
    )
    return previous


def _reopen_flags(flag_ids: Iterable[str]) -> None:
    ModerationFlag.objects.filter(pk__in=[int(pk) for pk in flag_ids]).update(
        state=State.OPEN, resolved_at=None, claimed_by=None, claimed_at=None
    )


# --- Reports from participants ------------------------------------------------------------------


def report(
    *, reporter: Participant, target: CanonicalValue | UpgradeHypothesis, reason: str
) -> bool:
    """A participant reports a value or story they were shown. Once per reporter and target
    (the database refuses a second); returns whether the report was new."""
    if reason not in REPORT_REASONS:
        raise ModerationError(_("Please choose why you report it."))
    try:
        with transaction.atomic():
            ModerationFlag.objects.create(
                deliberation_id=reporter.deliberation_id,
                content_type=ContentType.objects.get_for_model(target),
                object_id=target.pk,
                source=ModerationFlag.Source.REPORT,
                reason=reason,
                reporter=reporter,
            )
    except IntegrityError:
        return False
    return True


def reportable(
    *, participant: Participant, kind: str, pk: int
) -> CanonicalValue | UpgradeHypothesis | None:
    """The value or story *pk*, if it was put before the participant (in their vote or in a
    story they were shown); None otherwise, so nobody reports what they never saw."""
    mine = UpgradeHypothesis.objects.filter(judgments__participant=participant)
    if kind == "story":
        return mine.filter(pk=pk).first()
    if kind == "value":
        return (
            CanonicalValue.objects.filter(pk=pk)
            .filter(
                Q(shown_in_votes__participant=participant)
                | Q(upgrades_out__in=mine)
                | Q(upgrades_in__in=mine)
            )
            .distinct()
            .first()
        )
    return None


@transaction.atomic
def report_as_participant(*, participant: Participant, choice: str) -> bool:
    """A report as the participant's button sends it: "kind:id:reason". Raises
    ModerationError when it names nothing they were shown; returns whether it was new."""
    kind, _sep, rest = choice.partition(":")
    pk, _sep, reason = rest.partition(":")
    target = reportable(participant=participant, kind=kind, pk=int(pk)) if pk.isdigit() else None
    if target is None:
        raise ModerationError(_("There is nothing to report there."))
    return report(reporter=participant, target=target, reason=reason)


def flag_for_approval(card: ValuesCard) -> None:
    """In strict mode a new card waits in the queue for a moderator's approval."""
    if card.approval != Approval.PENDING:
        return
    ModerationFlag.objects.get_or_create(
        content_type=ContentType.objects.get_for_model(card),
        object_id=card.pk,
        source=ModerationFlag.Source.AUTOMATIC,
        reason="awaiting_approval",
        defaults={"deliberation_id": card.deliberation_id},
    )


# --- Approve, hide, ban -------------------------------------------------------------------------

HIDEABLE = (Message, CanonicalValue, UpgradeHypothesis, UpgradeJudgment)


def _rescore(deliberation_id: int | None, actor) -> None:
    """Moderation changed what counts: score the graph again once the change is committed."""
    if deliberation_id is not None:
        pipeline.queue_job(
            deliberation_id=deliberation_id,
            kind=pipeline.Kind.SCORE,
            triggered_by=actor if actor is not None and actor.is_authenticated else None,
        )


@transaction.atomic
def approve(*, actor, target, reason: str = "", flag: ModerationFlag | None = None):
    """The item is fine: a pending card becomes visible to others, and its flags close."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if isinstance(target, ValuesCard):
        card = ValuesCard.objects.select_for_update().get(pk=target.pk)
        if card.approval == Approval.HIDDEN:
            raise ModerationError(_("This card is hidden: restore it first."))
        before["approval"], after["approval"] = card.approval, Approval.APPROVED
        ValuesCard.objects.filter(pk=card.pk).update(approval=Approval.APPROVED)
    before["flags"] = _resolve_flags(target=target, user=actor, state=State.APPROVED, flag=flag)
    after["flags"] = {pk: {"state": State.APPROVED} for pk in before["flags"]}
    return record_action(
        actor=actor, action="approve", target=target, reason=reason, before=before, after=after
    )


@transaction.atomic
def hide(*, actor, target, reason: str = "", flag: ModerationFlag | None = None):
    """Hide the item from what others see and from scoring. Kept, and restored by undo."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if isinstance(target, ValuesCard):
        card = ValuesCard.objects.select_for_update().get(pk=target.pk)
        if card.approval == Approval.HIDDEN:
            raise ModerationError(_("This item is already hidden."))
        before["approval"], after["approval"] = card.approval, Approval.HIDDEN
        ValuesCard.objects.filter(pk=card.pk).update(approval=Approval.HIDDEN)
    elif isinstance(target, HIDEABLE):
        row = type(target).objects.select_for_update().get(pk=target.pk)
        if row.hidden_at is not None:
            raise ModerationError(_("This item is already hidden."))
        now = timezone.now()
        before["hidden_at"], after["hidden_at"] = None, now.isoformat()
        type(target).objects.filter(pk=row.pk).update(hidden_at=now)
    else:
        raise ModerationError(_("This kind of item cannot be hidden."))
    before["flags"] = _resolve_flags(target=target, user=actor, state=State.ACTIONED, flag=flag)
    after["flags"] = {pk: {"state": State.ACTIONED} for pk in before["flags"]}
    action = record_action(
        actor=actor, action="hide", target=target, reason=reason, before=before, after=after
    )
    _rescore(action.deliberation_id, actor)
    return action


@transaction.atomic
def ban(*, actor, participant: Participant, reason: str, flag: ModerationFlag | None = None):
    """Ban a participant: their data stays, is left out of scoring and marked in exports."""
    if not reason.strip():
        raise ModerationError(_("Please say why the participant is banned."))
    row = Participant.objects.select_for_update().get(pk=participant.pk)
    if row.banned_at is not None:
        raise ModerationError(_("This participant is already banned."))
    now = timezone.now()
    Participant.objects.filter(pk=row.pk).update(banned_at=now, ban_reason=reason)
    flags: dict[str, dict[str, Any]] = {}
    if flag is not None:
        # Banning the author settles the flag on their content too.
        flags.update(
            _resolve_flags(target=flag.target, user=actor, state=State.ACTIONED, flag=flag)
        )
    flags.update(_resolve_flags(target=row, user=actor, state=State.ACTIONED, flag=None))
    before = {"banned_at": None, "ban_reason": row.ban_reason, "flags": flags}
    after = {
        "banned_at": now.isoformat(),
        "ban_reason": reason,
        "flags": {pk: {"state": State.ACTIONED} for pk in flags},
    }
    action = record_action(
        actor=actor, action="ban", target=row, reason=reason, before=before, after=after
    )
    _rescore(action.deliberation_id, actor)
    return action


def author_of(target) -> Participant | None:
    """The participant who wrote an item, if a participant did."""
    if isinstance(target, Participant):
        return target
    if isinstance(target, Message):
        if target.role != Message.Role.PARTICIPANT:
            return None
        return target.interview.participant
    if isinstance(target, ValuesCard | UpgradeJudgment):
        return target.participant
    return None


# --- Editing a card -----------------------------------------------------------------------------


def _wording(obj) -> dict[str, Any]:
    return {"title": obj.title, "description": obj.description, "policies": list(obj.policies)}


@transaction.atomic
def edit_card(
    *,
    actor,
    card: ValuesCard,
    title: str,
    description: str,
    policies: Sequence[str],
    reason: str,
    flag: ModerationFlag | None = None,
) -> ModerationAction:
    """Change a card's wording; the old wording is kept as a revision. When the card carries
    its canonical value's wording, the value follows."""
    draft = CardDraft(title=title, description=description, policies=list(policies))
    validate_card(draft)  # raises InvalidCard with what to change
    card = ValuesCard.objects.select_for_update().get(pk=card.pk)
    old = _wording(card)
    new = draft.as_dict()
    if old == new:
        raise ModerationError(_("The wording is unchanged."))
    before: dict[str, Any] = {"card": old}
    after: dict[str, Any] = {"card": new}
    CardRevision.objects.create(card=card, edited_by=actor, reason=reason or "moderator", **old)
    ValuesCard.objects.filter(pk=card.pk).update(**new)
    value = CanonicalValue.objects.filter(cards=card, representative=card).first()
    if value is not None:
        before["value"], after["value"] = (
            {"id": value.pk, **_wording(value)},
            {"id": value.pk, **new},
        )
        CanonicalValue.objects.filter(pk=value.pk).update(**new)
    if flag is not None:
        before["flags"] = _resolve_flags(target=card, user=actor, state=State.ACTIONED, flag=flag)
        after["flags"] = {pk: {"state": State.ACTIONED} for pk in before["flags"]}
    return record_action(
        actor=actor, action="edit", target=card, reason=reason, before=before, after=after
    )


# --- Merging and splitting canonical values -----------------------------------------------------


def _move_decisions(*, cards: list[int], to: CanonicalValue, actor, reason: str) -> dict:
    """Cards now belong to *to*: their decisions in force are marked undone and a moderator's
    decision recorded. Returns the ids, so that undo can put the old decisions back."""
    now = timezone.now()
    old = list(
        DedupDecision.objects.filter(card_id__in=cards, undone_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    DedupDecision.objects.filter(pk__in=old).update(undone_at=now, undone_by=actor)
    new = [
        DedupDecision.objects.create(
            card_id=card_id,
            canonical=to,
            method=DedupDecision.Method.MODERATOR,
            reason=reason or "merged or split by a moderator",
        ).pk
        for card_id in cards
    ]
    return {"undone": old, "created": new}


def _restore_decisions(moved: dict, actor) -> None:
    """Undo of `_move_decisions`, for the cards whose moderator's decision is still in force
    (a card moved again since keeps its later decision)."""
    created = DedupDecision.objects.filter(pk__in=moved["created"], undone_at__isnull=True)
    cards = set(created.values_list("card_id", flat=True))
    created.update(undone_at=timezone.now(), undone_by=actor)
    DedupDecision.objects.filter(pk__in=moved["undone"], card_id__in=cards).update(
        undone_at=None, undone_by=None
    )


def _move_vote_rows(through: Any, source: int, target: int) -> dict:
    """Votes that showed (or chose) *source* now show *target*. A vote that already had the
    target loses the source row (one vote, one mention), recorded so that undo restores it."""
    rows = list(
        through.objects.filter(canonicalvalue_id=source).values_list("wisestvote_id", flat=True)
    )
    both = set(
        through.objects.filter(canonicalvalue_id=target, wisestvote_id__in=rows).values_list(
            "wisestvote_id", flat=True
        )
    )
    moved = sorted(set(rows) - both)
    dropped = sorted(both)
    through.objects.filter(canonicalvalue_id=source, wisestvote_id__in=moved).update(
        canonicalvalue_id=target
    )
    through.objects.filter(canonicalvalue_id=source, wisestvote_id__in=dropped).delete()
    return {"moved": moved, "dropped": dropped}


def _unmove_vote_rows(through: Any, record: dict, source: int, target: int) -> None:
    through.objects.filter(canonicalvalue_id=target, wisestvote_id__in=record["moved"]).update(
        canonicalvalue_id=source
    )
    through.objects.bulk_create(
        [through(canonicalvalue_id=source, wisestvote_id=pk) for pk in record["dropped"]],
        ignore_conflicts=True,
    )


def _move_judgments(source: CanonicalValue, target: CanonicalValue) -> dict:
    """Judgments of hypotheses that involve *source* go to the same edge with *target* in its
    place (found, or created as a copy of the story), so that the evidence keeps counting.

    Left where they are (and so out of scoring, since the source is merged away):
    - hypotheses between the two values (they would become a self-loop);
    - a judgment whose participant already judged the target's pair in that context (the same
      person would count twice; the database refuses it too).
    """
    moved: list[list[int]] = []  # [judgment id, from hypothesis id]
    created: list[int] = []
    left_hypotheses: list[int] = []
    left_judgments: list[int] = []
    hypotheses = UpgradeHypothesis.objects.filter(
        Q(from_value=source) | Q(to_value=source)
    ).order_by("id")
    for hypothesis in hypotheses:
        a = target.pk if hypothesis.from_value_id == source.pk else hypothesis.from_value_id
        b = target.pk if hypothesis.to_value_id == source.pk else hypothesis.to_value_id
        if a == b:
            left_hypotheses.append(hypothesis.pk)
            continue
        judgments = list(hypothesis.judgments.order_by("id"))
        if not judgments:
            continue
        edge = UpgradeHypothesis.objects.filter(
            context_id=hypothesis.context_id, from_value_id=a, to_value_id=b
        ).first()
        if edge is None:
            edge = UpgradeHypothesis.objects.create(
                deliberation_id=hypothesis.deliberation_id,
                context_id=hypothesis.context_id,
                from_value_id=a,
                to_value_id=b,
                story=hypothesis.story,
                policy_mapping=hypothesis.policy_mapping,
                is_control=hypothesis.is_control,
                job=hypothesis.job,
                model=hypothesis.model,
                prompt_version=hypothesis.prompt_version,
                hidden_at=hypothesis.hidden_at,
            )
            created.append(edge.pk)
        key = pair_key(a, b)
        judged = set(
            UpgradeJudgment.objects.filter(
                context_id=hypothesis.context_id, pair_key=key
            ).values_list("participant_id", flat=True)
        )
        for judgment in judgments:
            if judgment.participant_id in judged:
                left_judgments.append(judgment.pk)
                continue
            UpgradeJudgment.objects.filter(pk=judgment.pk).update(hypothesis=edge, pair_key=key)
            judged.add(judgment.participant_id)
            moved.append([judgment.pk, hypothesis.pk])
    return {
        "moved": moved,
        "created_hypotheses": created,
        "left_hypotheses": left_hypotheses,
        "left_judgments": left_judgments,
    }


def _unmove_judgments(record: dict) -> None:
    hypotheses = {
        h.pk: h for h in UpgradeHypothesis.objects.filter(pk__in={h for _j, h in record["moved"]})
    }
    for judgment_id, hypothesis_id in record["moved"]:
        original = hypotheses[hypothesis_id]
        UpgradeJudgment.objects.filter(pk=judgment_id).update(
            hypothesis=original, pair_key=original.pair_key
        )
    # Hypotheses the merge created go, unless participants judged them since (then they are
    # real edges between two visible values and stay).
    UpgradeHypothesis.objects.filter(
        pk__in=record["created_hypotheses"], judgments__isnull=True
    ).delete()


def _values(deliberation: Deliberation) -> QuerySet[CanonicalValue]:
    return CanonicalValue.objects.filter(deliberation=deliberation)


@transaction.atomic
def merge_values(
    *, actor, source: CanonicalValue, target: CanonicalValue, reason: str = ""
) -> ModerationAction:
    """Merge *source* into *target*: its cards, votes and judgments move to the target, the
    source stays as a row marked `merged_into` (out of what participants see and of scoring).
    Everything that moved is recorded in the action, and `undo` moves exactly that back."""
    if source.pk == target.pk:
        raise ModerationError(_("A value cannot be merged into itself."))
    if source.deliberation_id != target.deliberation_id:
        raise ModerationError(_("Both values must belong to the same deliberation."))
    locked = {
        v.pk: v
        for v in CanonicalValue.objects.select_for_update().filter(pk__in=[source.pk, target.pk])
    }
    source, target = locked[source.pk], locked[target.pk]
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise ModerationError(_("One of these values was already merged into another."))
    cards = list(ValuesCard.objects.filter(canonical=source).values_list("pk", flat=True))
    chosen = list(ValuesCard.objects.filter(chosen_canonical=source).values_list("pk", flat=True))
    ValuesCard.objects.filter(pk__in=cards).update(canonical=target)
    ValuesCard.objects.filter(pk__in=chosen).update(chosen_canonical=target)
    moves = {
        "cards": cards,
        "chosen_by_cards": chosen,
        "decisions": _move_decisions(cards=cards, to=target, actor=actor, reason=reason),
        "shown_in_votes": _move_vote_rows(WisestVote.shown.through, source.pk, target.pk),
        "chosen_in_votes": _move_vote_rows(WisestVote.chosen.through, source.pk, target.pk),
        "judgments": _move_judgments(source, target),
    }
    CanonicalValue.objects.filter(pk=source.pk).update(merged_into=target)
    action = record_action(
        actor=actor,
        action="merge",
        target=source,
        reason=reason,
        before={"merged_into": None, "value": source.pk, "into": target.pk},
        after={"merged_into": target.pk, **moves},
    )
    _rescore(source.deliberation_id, actor)
    return action


def _unmerge(action: ModerationAction, actor) -> dict:
    source_id, target_id = action.before["value"], action.before["into"]
    value = CanonicalValue.objects.select_for_update().get(pk=source_id)
    if value.merged_into_id != target_id:
        raise ModerationError(_("This value is no longer merged as the action left it."))
    moves = action.after
    ValuesCard.objects.filter(pk__in=moves["cards"], canonical_id=target_id).update(
        canonical_id=source_id
    )
    ValuesCard.objects.filter(
        pk__in=moves["chosen_by_cards"], chosen_canonical_id=target_id
    ).update(chosen_canonical_id=source_id)
    _restore_decisions(moves["decisions"], actor)
    _unmove_vote_rows(WisestVote.shown.through, moves["shown_in_votes"], source_id, target_id)
    _unmove_vote_rows(WisestVote.chosen.through, moves["chosen_in_votes"], source_id, target_id)
    _unmove_judgments(moves["judgments"])
    CanonicalValue.objects.filter(pk=source_id).update(merged_into=None)
    return {"merged_into": None}


@transaction.atomic
def split_card(*, actor, card: ValuesCard, reason: str = "") -> ModerationAction:
    """Take a card out of its canonical value into a new value of its own. Votes and stories
    stay with the value they were about. When the card carried the value's wording, the value
    takes the wording of its oldest remaining card."""
    card = ValuesCard.objects.select_for_update().get(pk=card.pk)
    if card.canonical_id is None:
        raise ModerationError(_("This card belongs to no value yet."))
    value = CanonicalValue.objects.select_for_update().get(pk=card.canonical_id)
    rest = ValuesCard.objects.filter(canonical=value).exclude(pk=card.pk).order_by("id")
    if not rest.exists():
        raise ModerationError(_("This card is the only one of its value: nothing to split."))
    new = new_value_from(card)
    ValuesCard.objects.filter(pk=card.pk).update(canonical=new)
    before: dict[str, Any] = {"canonical": value.pk}
    after: dict[str, Any] = {"canonical": new.pk, "new_value": new.pk}
    if value.representative_id == card.pk:
        heir = rest.exclude(approval=Approval.HIDDEN).first() or rest.first()
        assert heir is not None  # `rest` is not empty, checked above
        before["value"] = {"representative": card.pk, **_wording(value)}
        after["value"] = {"representative": heir.pk, **_wording(heir)}
        CanonicalValue.objects.filter(pk=value.pk).update(representative=heir, **_wording(heir))
    after["decisions"] = _move_decisions(cards=[card.pk], to=new, actor=actor, reason=reason)
    action = record_action(
        actor=actor, action="split", target=card, reason=reason, before=before, after=after
    )
    _rescore(card.deliberation_id, actor)
    return action


def _unsplit(action: ModerationAction, actor) -> dict:
    card = _target(action)
    new = CanonicalValue.objects.select_for_update().get(pk=action.after["new_value"])
    if card.canonical_id != new.pk:
        raise ModerationError(_("The card has moved since: undo that first."))
    if (
        ValuesCard.objects.filter(Q(canonical=new) | Q(chosen_canonical=new))
        .exclude(pk=card.pk)
        .exists()
        or new.shown_in_votes.exists()
        or UpgradeHypothesis.objects.filter(Q(from_value=new) | Q(to_value=new)).exists()
    ):
        raise ModerationError(
            _("The new value has gathered votes or stories since: merge it instead.")
        )
    original = action.before["canonical"]
    ValuesCard.objects.filter(pk=card.pk).update(canonical_id=original)
    if "value" in action.before:
        old = dict(action.before["value"])
        CanonicalValue.objects.filter(pk=original).update(
            representative_id=old.pop("representative"), **old
        )
    _restore_decisions(action.after["decisions"], actor)
    # The emptied value stays as a row (the log points at it), folded back into the original.
    CanonicalValue.objects.filter(pk=new.pk).update(merged_into_id=original)
    return {"canonical": original, "new_value_merged_into": original}


# --- Undo ---------------------------------------------------------------------------------------

UNDOABLE = {"approve", "hide", "edit", "merge", "split", "ban"}


def can_undo(action: ModerationAction) -> bool:
    """Not an undo itself, and not undone yet."""
    if action.action not in UNDOABLE or action.reverts_id is not None:
        return False
    try:
        action.reverted_by  # noqa: B018 - a reverse one-to-one: raises when there is none
    except ModerationAction.DoesNotExist:
        return True
    return False


def _target(action: ModerationAction):
    model = action.content_type.model_class() if action.content_type else None
    if model is None:
        raise ModerationError(_("What this action changed no longer exists."))
    return model._default_manager.select_for_update().get(pk=action.object_id)


@transaction.atomic
def undo(*, actor, action: ModerationAction, reason: str = "") -> ModerationAction:
    """Put back what *action* changed, exactly as its log entry recorded it; logged as a new
    action that reverts it. An action is undone at most once."""
    action = ModerationAction.objects.select_for_update().get(pk=action.pk)
    if not can_undo(action):
        raise ModerationError(_("This action cannot be undone (or was undone already)."))
    target = _target(action)
    before, after = action.before, action.after
    undone: dict[str, Any]
    if action.action == "approve":
        undone = {}
        if "approval" in before:
            ValuesCard.objects.filter(pk=target.pk).update(approval=before["approval"])
            undone["approval"] = before["approval"]
    elif action.action == "hide":
        if "approval" in before:
            ValuesCard.objects.filter(pk=target.pk).update(approval=before["approval"])
            undone = {"approval": before["approval"]}
        else:
            type(target).objects.filter(pk=target.pk).update(hidden_at=None)
            undone = {"hidden_at": None}
    elif action.action == "ban":
        Participant.objects.filter(pk=target.pk).update(
            banned_at=None, ban_reason=before.get("ban_reason", "")
        )
        undone = {"banned_at": None}
    elif action.action == "edit":
        if _wording(target) != after["card"]:
            raise ModerationError(_("The card was edited again since: undo that first."))
        CardRevision.objects.create(
            card=target,
            edited_by=actor,
            reason=f"undo of moderation action {action.pk}",
            **after["card"],
        )
        ValuesCard.objects.filter(pk=target.pk).update(**before["card"])
        if "value" in before:
            old = dict(before["value"])
            CanonicalValue.objects.filter(pk=old.pop("id")).update(**old)
        undone = {"card": before["card"]}
    elif action.action == "merge":
        undone = _unmerge(action, actor)
    else:  # split
        undone = _unsplit(action, actor)
    flags = before.get("flags", {})
    _reopen_flags(flags)
    if flags:
        undone["flags"] = {pk: {"state": State.OPEN} for pk in flags}
    result = record_action(
        actor=actor,
        action=f"undo {action.action}",
        target=target,
        deliberation_id=action.deliberation_id,
        reason=reason,
        before=after,
        after=undone,
        reverts=action,
    )
    if action.action in {"hide", "ban", "merge", "split"}:
        _rescore(action.deliberation_id, actor)
    return result

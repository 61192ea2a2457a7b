"""A participant's own data: everything stored about them, and its erasure, on their request or
when their deliberation's retention period ends.

Erasure follows the deliberation's `deletion_policy`.

Under both policies, what identifies the person goes: panel ids (the panel id becomes a keyed
digest, so the same panel id cannot take part a second time), demographics, the invite (deleted,
so its link stops working, with any note naming the invitee), every session (an erased
participant can no longer be resumed), and the personal receipt link and public id are replaced
by new random ones, so that exports made before cannot be linked to what remains.

"delete" also removes their text: every message of their interviews (the interviewer's replies
too, since they quote the person) and drafts, their cards' wording with earlier revisions,
embeddings and the language-model judge's reasons about them, the comments on their judgments
(every revision), their survey comment and the details of reports they filed. A canonical
value whose wording came from an erased card takes the wording of another card of the same value
(an approved one first); when no card is left, the value is hidden and leaves the graph. The
upgrade stories between such values were written from the erased wording: they are emptied (the
judge page then shows the two values' cards, as it does without a language model).

"anonymise" keeps the text.

Under both policies their wisest-value votes, their judgments' verdicts and their survey's
scores stay: they hold no text and no identity, and the graph everyone built together stays
whole (scoring counts an erased participant's verdicts; see pipeline.read_judgments). The
participant row itself stays, marked `erased_at`, so that counts and the audit log stay true.
The graph is rescored when the erasure commits, and the audit log records it (actor: none, the
participant themself or the retention rule).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from elicit.models import (
    CardRevision,
    Deliberation,
    Invite,
    Message,
    ModerationFlag,
    Participant,
    SurveyResponse,
    ValuesCard,
    new_token,
)
from elicit.services import erased_panel_pid
from graph import pipeline
from graph.models import (
    CanonicalValue,
    CardEmbedding,
    DedupDecision,
    JudgmentRevision,
    PipelineJob,
    UpgradeHypothesis,
    UpgradeJudgment,
    WisestVote,
)
from graph.moderation.services import record_action

ERASED_TITLE = "[erased]"  # a card's title may not be empty (a database constraint)
WITHDRAWN_TITLE = "[withdrawn]"


def _when(value) -> str | None:
    return value.isoformat() if value else None


# --- Everything stored about a participant --------------------------------------------------------


def export_participant(participant: Participant) -> dict[str, Any]:
    """Everything stored about the participant, as JSON-ready data: what they gave (panel ids,
    demographics, consent), what they said and wrote, how they voted and judged, with every
    revision, their survey and reports, and what moderation recorded about them."""
    participant = Participant.objects.select_related("deliberation", "invite").get(
        pk=participant.pk
    )
    interviews = participant.interviews.select_related("question").prefetch_related("messages")
    cards = ValuesCard.objects.filter(participant=participant).select_related(
        "question", "canonical"
    )
    judgments = (
        UpgradeJudgment.objects.filter(participant=participant)
        .select_related("hypothesis__from_value", "hypothesis__to_value", "context")
        .prefetch_related("revisions")
    )
    votes = (
        WisestVote.objects.filter(participant=participant)
        .select_related("question")
        .prefetch_related("shown", "chosen")
    )
    survey = SurveyResponse.objects.filter(participant=participant).first()
    return {
        "deliberation": {
            "slug": participant.deliberation.slug,
            "title": participant.deliberation.title,
            "deletion_policy": participant.deliberation.deletion_policy,
            "retention_days": participant.deliberation.retention_days,
        },
        "participant": {
            "public_id": str(participant.public_id),
            "panel_pid": participant.panel_pid,
            "panel_study_id": participant.panel_study_id,
            "panel_session_id": participant.panel_session_id,
            "invite": participant.invite.token if participant.invite else None,
            "demographics": participant.demographics,
            "created_at": _when(participant.created_at),
            "consented_at": _when(participant.consented_at),
            "completed_at": _when(participant.completed_at),
            "last_seen_at": _when(participant.last_seen_at),
            "banned_at": _when(participant.banned_at),
            "ban_reason": participant.ban_reason,
            "erased_at": _when(participant.erased_at),
        },
        "interviews": [
            {
                "question": interview.question.text,
                "status": interview.status,
                "interviewer": interview.interviewer,
                "model": interview.model,
                "prompt_version": interview.prompt_version,
                "started_at": _when(interview.started_at),
                "completed_at": _when(interview.completed_at),
                "draft_card": interview.draft_card,
                "messages": [
                    {
                        "seq": message.seq,
                        "role": message.role,
                        "content": message.content,
                        "proposed_card": message.tool_call,
                        "status": message.status,
                        "hidden_by_moderator": message.hidden_at is not None,
                        "created_at": _when(message.created_at),
                    }
                    for message in interview.messages.all()
                ],
            }
            for interview in interviews
        ],
        "cards": [
            {
                "question": card.question.text,
                "title": card.title,
                "description": card.description,
                "policies": card.policies,
                "approval": card.approval,
                "canonical_value": card.canonical.title if card.canonical else None,
                "created_at": _when(card.created_at),
                "revisions": [
                    {
                        "title": revision.title,
                        "description": revision.description,
                        "policies": revision.policies,
                        "reason": revision.reason,
                        "created_at": _when(revision.created_at),
                    }
                    for revision in card.revisions.all()
                ],
            }
            for card in cards
        ],
        "wisest_votes": [
            {
                "question": vote.question.text,
                "shown": sorted(value.title for value in vote.shown.all()),
                "chosen": sorted(value.title for value in vote.chosen.all()),
                "shown_at": _when(vote.shown_at),
                "answered_at": _when(vote.answered_at),
            }
            for vote in votes
        ],
        "judgments": [
            {
                "context": judgment.context.text,
                "from_value": judgment.hypothesis.from_value.title,
                "to_value": judgment.hypothesis.to_value.title,
                "story": judgment.hypothesis.story,
                "verdict": judgment.verdict,
                "comment": judgment.comment,
                "shown_at": _when(judgment.shown_at),
                "answered_at": _when(judgment.answered_at),
                "revisions": [
                    {
                        "verdict": revision.verdict,
                        "comment": revision.comment,
                        "created_at": _when(revision.created_at),
                    }
                    for revision in judgment.revisions.all()
                ],
            }
            for judgment in judgments
        ],
        "survey": None
        if survey is None
        else {
            "felt_represented": survey.felt_represented,
            "graph_fair": survey.graph_fair,
            "clarified_thinking": survey.clarified_thinking,
            "trust_process": survey.trust_process,
            "comment": survey.comment,
            "created_at": _when(survey.created_at),
        },
        "reports": [
            {"reason": flag.reason, "detail": flag.detail, "created_at": _when(flag.created_at)}
            for flag in ModerationFlag.objects.filter(reporter=participant)
        ],
    }


# --- Erasure --------------------------------------------------------------------------------------


def _reword_values(cards: list[ValuesCard]) -> tuple[list[int], list[int]]:
    """Values whose wording came from one of the erased `cards` take another card's wording, or
    are hidden when none is left. Returns (reworded ids, hidden ids)."""
    card_ids = {card.pk for card in cards}
    values = CanonicalValue.objects.filter(
        Q(representative__in=card_ids)
        | Q(cards__in=card_ids)
        | Q(chosen_by_cards__in=card_ids)
        | Q(dedup_decisions__card__in=card_ids)
    ).distinct()
    wordings = {(c.title, c.description) for c in cards}
    reworded, hidden = [], []
    for value in values:
        if value.representative_id not in card_ids and (value.title, value.description) not in (
            wordings
        ):
            continue  # its wording is someone else's
        others = sorted(
            ValuesCard.objects.filter(canonical=value)
            .exclude(pk__in=card_ids)
            .exclude(participant__erased_at__isnull=False),
            key=lambda c: (c.approval != ValuesCard.Approval.APPROVED, c.pk),
        )
        if others:
            best = others[0]
            value.title, value.description, value.policies = (
                best.title,
                best.description,
                list(best.policies),
            )
            value.representative = best
            reworded.append(value.pk)
        else:
            value.title, value.description, value.policies = WITHDRAWN_TITLE, "", []
            value.representative = None
            value.hidden_at = value.hidden_at or timezone.now()
            hidden.append(value.pk)
        value.save(
            update_fields=["title", "description", "policies", "representative", "hidden_at"]
        )
    return reworded, hidden


def _delete_text(participant: Participant) -> dict[str, Any]:
    cards = list(ValuesCard.objects.filter(participant=participant))
    card_ids = [card.pk for card in cards]
    messages = Message.objects.filter(interview__participant=participant)
    message_ids = list(messages.values_list("pk", flat=True))
    removed: dict[str, Any] = {
        "messages": messages.update(content="", tool_call=None, error=""),
        "cards": len(cards),
    }
    participant.interviews.update(draft_card=None)
    reworded, hidden = _reword_values(cards)
    UpgradeHypothesis.objects.filter(
        Q(from_value__in=reworded + hidden) | Q(to_value__in=reworded + hidden)
    ).update(story="", policy_mapping=[])
    ValuesCard.objects.filter(pk__in=card_ids).update(
        title=ERASED_TITLE, description="", policies=[]
    )
    CardRevision.objects.filter(card__in=card_ids).delete()
    CardEmbedding.objects.filter(card__in=card_ids).delete()
    DedupDecision.objects.filter(card__in=card_ids).exclude(reason="").update(reason="")
    removed["judgment_comments"] = (
        UpgradeJudgment.objects.filter(participant=participant)
        .exclude(comment="")
        .update(comment="")
    )
    JudgmentRevision.objects.filter(judgment__participant=participant).update(comment="")
    SurveyResponse.objects.filter(participant=participant).update(comment="")
    # Flags on their text may quote it; their own reports are text they wrote.
    ModerationFlag.objects.filter(
        Q(reporter=participant)
        | Q(content_type=ContentType.objects.get_for_model(Message), object_id__in=message_ids)
        | Q(content_type=ContentType.objects.get_for_model(ValuesCard), object_id__in=card_ids)
    ).update(detail="")
    removed["values_reworded"] = reworded
    removed["values_hidden"] = hidden
    return removed


def _erase(participant: Participant, *, reason: str) -> None:
    deliberation = participant.deliberation
    policy = deliberation.deletion_policy
    before = {
        "had_panel_id": bool(participant.panel_pid),
        "had_demographics": bool(participant.demographics),
        "had_invite": participant.invite_id is not None,
    }
    removed: dict[str, Any] = {}
    if policy == Deliberation.DeletionPolicy.DELETE:
        removed = _delete_text(participant)
    if participant.invite_id is not None:
        Invite.objects.filter(pk=participant.invite_id).delete()
    Participant.objects.filter(pk=participant.pk).update(
        panel_pid=erased_panel_pid(deliberation.pk, participant.panel_pid)
        if participant.panel_pid
        else "",
        panel_study_id="",
        panel_session_id="",
        invite=None,
        demographics={},
        receipt_token=new_token(),
        public_id=uuid.uuid4(),
        erased_at=timezone.now(),
    )
    participant.refresh_from_db()
    record_action(
        actor=None,  # the participant themself, or the retention rule
        action="erase",
        target=participant,
        deliberation_id=deliberation.pk,
        reason=reason,
        before=before,
        after={"policy": policy, **removed},
    )


def erase_participant(*, participant: Participant, reason: str = "", rescore: bool = True) -> bool:
    """Erase the participant as their deliberation's deletion policy says (see the module
    docstring), log it, and rescore the graph when the transaction commits. Safe to run twice:
    an erased participant is left as is. Returns whether anything was erased."""
    with transaction.atomic():
        locked = (
            Participant.objects.select_for_update()
            .select_related("deliberation")
            .filter(pk=participant.pk, erased_at__isnull=True)
            .first()
        )
        if locked is None:
            return False
        _erase(locked, reason=reason or "The participant asked for their data to be deleted.")
        if rescore:
            queue_rescore(locked.deliberation_id, reason="erasure")
    return True


def queue_rescore(deliberation_id: int, *, reason: str) -> PipelineJob:
    return pipeline.queue_job(
        deliberation_id=deliberation_id,
        kind=PipelineJob.Kind.SCORE,
        params={"reason": reason},
    )


def participants_past_retention(now=None):
    """Participants not yet erased who joined longer ago than their deliberation keeps data."""
    now = now or timezone.now()
    expired = []
    for deliberation in Deliberation.objects.filter(retention_days__isnull=False):
        cutoff = now - timedelta(days=deliberation.retention_days)
        expired.extend(
            Participant.objects.filter(
                deliberation=deliberation, erased_at__isnull=True, created_at__lt=cutoff
            ).select_related("deliberation")
        )
    return expired


def apply_retention(*, now=None) -> int:
    """Erase every participant past their deliberation's retention period, then rescore each
    deliberation that lost someone, once. Idempotent: erased participants are skipped."""
    touched: set[int] = set()
    erased = 0
    for participant in participants_past_retention(now):
        days = participant.deliberation.retention_days
        if erase_participant(
            participant=participant,
            reason=f"Retention period of {days} days ended.",
            rescore=False,
        ):
            erased += 1
            touched.add(participant.deliberation_id)
    for deliberation_id in sorted(touched):
        with transaction.atomic():
            queue_rescore(deliberation_id, reason="retention")
    return erased

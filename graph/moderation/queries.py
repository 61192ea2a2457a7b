"""What the moderation pages show: the queue as filtered, one item with its context, the values
of a deliberation, the audit log and its CSV rows. Read-only; scoped to what the user may see."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from elicit import access
from elicit.models import (
    Deliberation,
    Message,
    ModerationAction,
    ModerationFlag,
    Participant,
    StaffAssignment,
    ValuesCard,
)
from graph.models import CanonicalValue, UpgradeHypothesis, UpgradeJudgment
from graph.moderation import services

# What can be flagged, by the name used in the kind filter, with the fields searched.
KINDS: dict[str, tuple[type[models.Model], tuple[str, ...]]] = {
    "message": (Message, ("content",)),
    "card": (ValuesCard, ("title", "description")),
    "value": (CanonicalValue, ("title", "description")),
    "story": (UpgradeHypothesis, ("story",)),
    "judgment": (UpgradeJudgment, ("comment",)),
    "participant": (Participant, ("public_id",)),
}

KIND_LABELS = {
    "message": _("Interview message"),
    "card": _("Values card"),
    "value": _("Canonical value"),
    "story": _("Upgrade story"),
    "judgment": _("Upgrade comment"),
    "participant": _("Participant"),
}

STATE_FILTERS = {
    "open": (ModerationFlag.State.OPEN, ModerationFlag.State.CLAIMED),
    "unclaimed": (ModerationFlag.State.OPEN,),
    "claimed": (ModerationFlag.State.CLAIMED,),
    "approved": (ModerationFlag.State.APPROVED,),
    "actioned": (ModerationFlag.State.ACTIONED,),
    "all": tuple(ModerationFlag.State.values),
}


STATE_LABELS = {
    "open": _("To do"),
    "unclaimed": _("Nobody on it"),
    "claimed": _("Being reviewed"),
    "approved": _("Approved"),
    "actioned": _("Action taken"),
    "all": _("All"),
}


def kind_of(obj) -> str:
    for name, (model, _fields) in KINDS.items():
        if isinstance(obj, model):
            return name
    return ""


def acting_deliberations(user) -> QuerySet[Deliberation]:
    """Deliberations whose queue the user may act on (admins all, moderators theirs)."""
    if access.is_admin(user):
        return Deliberation.objects.all()
    return Deliberation.objects.filter(
        staffassignment__user=user, staffassignment__role=StaffAssignment.Role.MODERATOR
    ).distinct()


def _int(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() else None


def _search(text: str) -> Q:
    """Flags whose reason or detail, or whose item's text, contains *text*."""
    match = Q(reason__icontains=text) | Q(detail__icontains=text)
    for model, fields in KINDS.values():
        found = Q()
        for field in fields:
            found |= Q(**{f"{field}__icontains": text})
        match |= Q(
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=model._default_manager.filter(found).values("pk"),
        )
    return match


def queue(user, params: Mapping[str, Any]) -> tuple[QuerySet[ModerationFlag], dict[str, Any]]:
    """The flags the user may see, filtered as *params* ask (GET or POST), oldest first."""
    filters: dict[str, Any] = {
        "deliberation": _int(params.get("deliberation")),
        "source": params.get("source", ""),
        "reason": str(params.get("reason", "")).strip()[:64],
        "state": params.get("state", "") if params.get("state") in STATE_FILTERS else "open",
        "kind": params.get("kind", "") if params.get("kind") in KINDS else "",
        "q": str(params.get("q", "")).strip()[:200],
    }
    flags = ModerationFlag.objects.filter(
        deliberation__in=access.moderated_deliberations(user),
        state__in=STATE_FILTERS[filters["state"]],
    )
    if filters["deliberation"] is not None:
        flags = flags.filter(deliberation_id=filters["deliberation"])
    if filters["source"] in ModerationFlag.Source.values:
        flags = flags.filter(source=filters["source"])
    else:
        filters["source"] = ""
    if filters["reason"]:
        flags = flags.filter(reason=filters["reason"])
    if filters["kind"]:
        flags = flags.filter(
            content_type=ContentType.objects.get_for_model(KINDS[filters["kind"]][0])
        )
    if filters["q"]:
        flags = flags.filter(_search(filters["q"]))
    flags = flags.select_related(
        "deliberation", "claimed_by", "content_type", "reporter"
    ).prefetch_related("target")
    return flags.order_by("created_at", "id"), filters


def reasons(user) -> list[str]:
    return list(
        ModerationFlag.objects.filter(deliberation__in=access.moderated_deliberations(user))
        .values_list("reason", flat=True)
        .distinct()
        .order_by("reason")
    )


def label_rows(flags: Iterable[ModerationFlag]) -> None:
    """Give each flag of a page its item's kind and text, for the queue table."""
    for flag in flags:
        vars(flag).update(
            kind_label=KIND_LABELS.get(kind_of(flag.target), _("Deleted item")),
            preview=preview(flag.target),
        )


def preview(target) -> str:
    """The text of a flagged item, for the queue."""
    if target is None:
        return ""
    if isinstance(target, ValuesCard | CanonicalValue):
        return f"{target.title}: {target.description}"
    if isinstance(target, Message):
        return target.content
    if isinstance(target, UpgradeHypothesis):
        return target.story or str(target)
    if isinstance(target, UpgradeJudgment):
        return target.comment or target.get_verdict_display()
    return str(target)


def is_hidden(target) -> bool:
    if isinstance(target, ValuesCard):
        return target.approval == ValuesCard.Approval.HIDDEN
    if isinstance(target, Participant):
        return target.banned_at is not None
    return getattr(target, "hidden_at", None) is not None


def _actions_on(target) -> QuerySet[ModerationAction]:
    return ModerationAction.objects.filter(
        content_type=ContentType.objects.get_for_model(target), object_id=target.pk
    ).select_related("actor")


def flag_context(user, flag: ModerationFlag) -> dict[str, Any]:
    """Everything a moderator needs to decide on one item."""
    target = flag.target
    author = services.author_of(target) if target is not None else None
    context: dict[str, Any] = {
        "flag": flag,
        "target": target,
        "kind": kind_of(target),
        "kind_label": KIND_LABELS.get(kind_of(target), _("Deleted item")),
        "author": author,
        "hidden": is_hidden(target) if target is not None else False,
        "can_act": access.can_moderate(user, flag.deliberation),
        "claim_live": services.claim_is_live(flag),
        "mine": flag.claimed_by_id == user.pk,
        "open": flag.state in services.OPEN_STATES,
        "claim_minutes": services.claim_minutes(),
        "hideable": isinstance(target, (ValuesCard, *services.HIDEABLE)),
        "history": list(_actions_on(target)[:20]) if target is not None else [],
        "section": "queue",
        "other_flags": [],
    }
    if target is not None:
        context["other_flags"] = list(
            ModerationFlag.objects.filter(
                content_type_id=flag.content_type_id, object_id=flag.object_id
            )
            .exclude(pk=flag.pk)
            .select_related("reporter")
        )
    if isinstance(target, Message):
        context["transcript"] = list(
            Message.objects.filter(
                interview_id=target.interview_id, seq__gte=target.seq - 3, seq__lte=target.seq + 1
            )
        )
    if isinstance(target, ValuesCard):
        context["revisions"] = list(target.revisions.select_related("edited_by"))
    if isinstance(target, UpgradeJudgment):
        context["hypothesis"] = target.hypothesis
    if author is not None:
        context["author_flags"] = author_flag_count(author)
    return context


def author_flag_count(participant: Participant) -> int:
    """Flags on anything the participant wrote (a troll shows up as many)."""
    count = 0
    written: tuple[tuple[type[models.Model], str], ...] = (
        (ValuesCard, "participant"),
        (Message, "interview__participant"),
        (UpgradeJudgment, "participant"),
    )
    for model, lookup in written:
        count += ModerationFlag.objects.filter(
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=model._default_manager.filter(**{lookup: participant}).values("pk"),
        ).count()
    return count


# --- Values -------------------------------------------------------------------------------------


def value_list(user, params: Mapping[str, Any]) -> dict[str, Any]:
    deliberations = access.moderated_deliberations(user).order_by("title")
    chosen = _int(params.get("deliberation"))
    deliberation = deliberations.filter(pk=chosen).first() if chosen else deliberations.first()
    q = str(params.get("q", "")).strip()[:200]
    values = CanonicalValue.objects.none()
    if deliberation is not None:
        values = (
            CanonicalValue.objects.filter(deliberation=deliberation)
            .annotate(card_count=Count("cards", distinct=True))
            .order_by("title", "id")
        )
        if not params.get("merged"):
            values = values.filter(merged_into__isnull=True)
        if q:
            values = values.filter(
                Q(title__icontains=q) | Q(description__icontains=q) | Q(cards__title__icontains=q)
            ).distinct()
    return {
        "section": "values",
        "deliberations": deliberations,
        "deliberation": deliberation,
        "values": values[:500],
        "q": q,
        "show_merged": bool(params.get("merged")),
    }


def value_context(user, value: CanonicalValue) -> dict[str, Any]:
    return {
        "section": "values",
        "value": value,
        "cards": list(value.cards.select_related("participant", "question").order_by("id")),
        "merged_values": list(value.merged_values.all()),
        "targets": list(
            CanonicalValue.objects.filter(
                deliberation_id=value.deliberation_id, merged_into__isnull=True
            )
            .exclude(pk=value.pk)
            .order_by("title", "id")
        ),
        "can_act": access.can_moderate(user, value.deliberation),
        "history": list(_actions_on(value)[:20]),
        "hypotheses": UpgradeHypothesis.objects.filter(
            Q(from_value=value) | Q(to_value=value)
        ).count(),
        "votes": value.shown_in_votes.count(),
    }


# --- The audit log ------------------------------------------------------------------------------


def audit_log(user, params: Mapping[str, Any]) -> tuple[QuerySet[ModerationAction], dict]:
    """The actions the user may see, newest first, filtered by deliberation, action, search."""
    filters = {
        "deliberation": _int(params.get("deliberation")),
        "action": str(params.get("action", "")).strip()[:32],
        "q": str(params.get("q", "")).strip()[:200],
    }
    actions = ModerationAction.objects.all()
    if not access.is_admin(user):
        actions = actions.filter(deliberation__in=access.moderated_deliberations(user))
    if filters["deliberation"] is not None:
        actions = actions.filter(deliberation_id=filters["deliberation"])
    if filters["action"]:
        actions = actions.filter(action=filters["action"])
    if filters["q"]:
        actions = actions.filter(
            Q(target_repr__icontains=filters["q"]) | Q(reason__icontains=filters["q"])
        )
    actions = actions.select_related("actor", "deliberation", "content_type", "reverted_by")
    return actions.order_by("-created_at", "-id"), filters


CSV_HEADER = [
    "id",
    "created_at",
    "deliberation",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "reason",
    "before",
    "after",
    "reverts",
]

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _cells(a: ModerationAction) -> list[Any]:
    return [
        a.pk,
        a.created_at.isoformat(),
        a.deliberation.slug if a.deliberation else "",
        a.actor.get_username() if a.actor else "system",
        a.action,
        a.content_type.model if a.content_type else "",
        a.object_id or "",
        a.target_repr,
        a.reason,
        json.dumps(a.before, sort_keys=True, ensure_ascii=False),
        json.dumps(a.after, sort_keys=True, ensure_ascii=False),
        a.reverts_id or "",
    ]


def csv_rows(actions: Iterable[ModerationAction]) -> Iterator[list[str]]:
    yield CSV_HEADER
    for action in actions.iterator(chunk_size=500) if isinstance(actions, QuerySet) else actions:
        yield [safe_cell(cell) for cell in _cells(action)]

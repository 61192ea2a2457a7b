"""The audit log: one function appends an entry (`ModerationAction`, append-only).

Here rather than in graph/moderation/services.py (whose `record_action` calls it) because the
participant side logs too, and `elicit` never imports `graph`: the Django admin of a
deliberation, for instance, changes its moderation settings.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType

from elicit.models import ModerationAction


def describe(target) -> str:
    """A short, human description of a logged object."""
    if target is None:
        return ""
    name = target._meta.verbose_name
    return f"{name} {target.pk}: {target!s}"[:300]


def record(
    *,
    actor,
    action: str,
    target=None,
    deliberation_id: int | None = None,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reverts: ModerationAction | None = None,
) -> ModerationAction:
    """Append one entry. `actor` None (or anonymous) means the system."""
    return ModerationAction.objects.create(
        deliberation_id=deliberation_id,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action[:32],
        content_type=ContentType.objects.get_for_model(target) if target is not None else None,
        object_id=target.pk if target is not None else None,
        target_repr=describe(target),
        reason=reason,
        before=before or {},
        after=after or {},
        reverts=reverts,
    )

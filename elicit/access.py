"""Who may do what on a deliberation. One place, so every page and export asks the same question.

Roles:
- **admin**: a superuser. Every deliberation, every action.
- **researcher**: a user in the "researchers" group may create deliberations; on a deliberation
  they see research pages, exports and the moderation queue (read-only) only when assigned to it
  as researcher (`StaffAssignment`).
- **moderator**: a user assigned to a deliberation as moderator acts on its moderation queue.
- Anyone else, participants included, sees no staff page.

Fetch helpers answer 404 (not 403) for a deliberation the user may not see, so that the slugs of
draft deliberations do not leak; anonymous users are sent to the login page first.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, Group
from django.db.models import QuerySet

from elicit.models import Deliberation, StaffAssignment

RESEARCHERS_GROUP = "researchers"
MODERATORS_GROUP = "moderators"

Role = StaffAssignment.Role


def is_admin(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def in_group(user, name: str) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    return user.groups.filter(name=name).exists()


def is_researcher(user) -> bool:
    """May open the research area and create deliberations."""
    return is_admin(user) or in_group(user, RESEARCHERS_GROUP)


def roles_on(user, deliberation: Deliberation) -> set[str]:
    """The roles the user holds on this deliberation ("admin" for superusers). A pilot (a
    deliberation of simulated participants) has the staff of the deliberation it pilots."""
    if isinstance(user, AnonymousUser) or not (user.is_authenticated and user.is_active):
        return set()
    held = set(
        StaffAssignment.objects.filter(
            user=user, deliberation_id=deliberation.pilot_of_id or deliberation.pk
        ).values_list("role", flat=True)
    )
    if user.is_superuser:
        held.add("admin")
    return held


def can_research(user, deliberation: Deliberation) -> bool:
    """Research pages, results and exports of this deliberation."""
    return bool(roles_on(user, deliberation) & {"admin", Role.RESEARCHER})


def can_moderate(user, deliberation: Deliberation) -> bool:
    """Act on this deliberation's moderation queue."""
    return bool(roles_on(user, deliberation) & {"admin", Role.MODERATOR})


def can_view_moderation(user, deliberation: Deliberation) -> bool:
    """See the moderation queue and log (researchers read them, they do not act)."""
    return bool(roles_on(user, deliberation) & {"admin", Role.MODERATOR, Role.RESEARCHER})


def _assigned(user, roles: tuple[str, ...]) -> QuerySet[Deliberation]:
    """Real deliberations only: pilots are reached from the deliberation they pilot."""
    real = Deliberation.objects.filter(pilot_of__isnull=True)
    if is_admin(user):
        return real
    if not user.is_authenticated:
        return Deliberation.objects.none()
    return real.filter(staffassignment__user=user, staffassignment__role__in=roles).distinct()


def research_deliberations(user) -> QuerySet[Deliberation]:
    return _assigned(user, (Role.RESEARCHER,))


def moderated_deliberations(user) -> QuerySet[Deliberation]:
    """Deliberations whose queue the user may see (moderators act, researchers read)."""
    return _assigned(user, (Role.MODERATOR, Role.RESEARCHER))


def ensure_groups() -> None:
    """The two groups exist (called by the demo seed and by a data migration)."""
    for name in (RESEARCHERS_GROUP, MODERATORS_GROUP):
        Group.objects.get_or_create(name=name)

"""Who may see a deliberation's staff pages: admins all, staff only where assigned."""

import pytest

from elicit import access
from elicit.models import StaffAssignment
from tests.factories import DeliberationFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = StaffAssignment.Role


def assign(user, deliberation, role):
    StaffAssignment.objects.create(user=user, deliberation=deliberation, role=role)


def test_a_researcher_sees_only_the_deliberations_they_are_assigned_to():
    mine, other = DeliberationFactory(), DeliberationFactory()
    rhea = UserFactory(username="rhea")
    assign(rhea, mine, Role.RESEARCHER)
    assert access.can_research(rhea, mine)
    assert not access.can_research(rhea, other)
    assert list(access.research_deliberations(rhea)) == [mine]
    assert access.can_view_moderation(rhea, mine)
    assert not access.can_moderate(rhea, mine)


def test_a_moderator_acts_on_their_queue_but_sees_no_research_page():
    deliberation = DeliberationFactory()
    mo = UserFactory(username="mo")
    assign(mo, deliberation, Role.MODERATOR)
    assert access.can_moderate(mo, deliberation)
    assert not access.can_research(mo, deliberation)
    assert list(access.research_deliberations(mo)) == []
    assert list(access.moderated_deliberations(mo)) == [deliberation]


def test_an_admin_may_do_everything_and_anonymous_users_nothing():
    from django.contrib.auth.models import AnonymousUser

    deliberation = DeliberationFactory()
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    assert access.can_research(admin, deliberation)
    assert access.can_moderate(admin, deliberation)
    anonymous = AnonymousUser()
    assert not access.can_research(anonymous, deliberation)
    assert not access.can_view_moderation(anonymous, deliberation)
    assert not access.research_deliberations(anonymous).exists()


def test_the_researchers_group_opens_the_research_area_without_any_assignment():
    rhea = UserFactory(username="rhea")
    assert not access.is_researcher(rhea)
    access.ensure_groups()
    rhea.groups.add(access.Group.objects.get(name=access.RESEARCHERS_GROUP))
    assert access.is_researcher(rhea)


def test_an_inactive_account_loses_its_roles():
    deliberation = DeliberationFactory()
    rhea = UserFactory(username="rhea", is_active=False)
    assign(rhea, deliberation, Role.RESEARCHER)
    assert not access.can_research(rhea, deliberation)

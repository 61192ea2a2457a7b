"""A change of a deliberation's moderation settings is in the audit log, with who made it, where,
and the state before and after: from the Django admin and from the research area's setup page
alike. A save that changes something else writes nothing there."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from elicit import access
from elicit.models import Deliberation, ModerationAction, StaffAssignment
from tests.factories import DeliberationFactory, UserFactory
from tests.graph.research.test_dashboard import setup_post

pytestmark = pytest.mark.django_db


def admin_change_data(client, deliberation: Deliberation, **changes) -> dict:
    """The admin's change form as the page filled it, with *changes* typed in."""
    page = client.get(f"/admin/elicit/deliberation/{deliberation.pk}/change/")
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form.initial.get(name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value if isinstance(value, str | int) else str(value)
    data["demographic_fields"] = "[]"
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for key, value in management.initial.items():
            data[f"{inline.formset.prefix}-{key}"] = value
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def test_an_admin_changing_the_moderation_mode_is_logged_with_before_and_after(admin_client):
    deliberation = DeliberationFactory(moderation_mode="permissive")
    data = admin_change_data(admin_client, deliberation, moderation_mode="strict")
    response = admin_client.post(f"/admin/elicit/deliberation/{deliberation.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    deliberation.refresh_from_db()
    assert deliberation.moderation_mode == "strict"
    (entry,) = ModerationAction.objects.filter(deliberation=deliberation)
    assert entry.action == "moderation_settings"
    assert entry.actor.username == "admin"
    assert entry.before == {"moderation_mode": "permissive"}
    assert entry.after == {"moderation_mode": "strict"}
    assert entry.reason == "Changed in the admin."
    assert entry.target_repr == f"deliberation {deliberation.pk}: {deliberation.title}"
    # The moderation log shows it.
    log = admin_client.get(reverse("moderation:log")).content.decode()
    assert "moderation_settings" in log and "Changed in the admin." in log


def test_an_admin_save_that_leaves_the_moderation_settings_alone_logs_nothing(admin_client):
    deliberation = DeliberationFactory(moderation_mode="strict")
    data = admin_change_data(admin_client, deliberation, title="A better title")
    response = admin_client.post(f"/admin/elicit/deliberation/{deliberation.pk}/change/", data)
    assert response.status_code == 302
    deliberation.refresh_from_db()
    assert deliberation.title == "A better title"
    assert not ModerationAction.objects.exists()


def test_a_researcher_changing_the_moderation_mode_on_the_setup_page_is_logged(client):
    rhea = UserFactory(username="rhea")
    rhea.groups.add(Group.objects.get(name=access.RESEARCHERS_GROUP))
    deliberation = DeliberationFactory(moderation_mode="permissive", block_flagged_messages=False)
    StaffAssignment.objects.create(user=rhea, deliberation=deliberation, role="researcher")
    client.force_login(rhea)
    question = {"text": "Should I move?", "is_active": "on", "contexts": "When I am torn"}
    response = client.post(
        reverse("research:edit", kwargs={"slug": deliberation.slug}),
        setup_post(deliberation, [question], moderation_mode="strict", block_flagged_messages="on"),
    )
    assert response.status_code == 302
    (entry,) = ModerationAction.objects.filter(deliberation=deliberation)
    assert (entry.action, entry.actor, entry.reason) == (
        "moderation_settings",
        rhea,
        "Changed on the setup page.",
    )
    assert entry.before == {"moderation_mode": "permissive", "block_flagged_messages": False}
    assert entry.after == {"moderation_mode": "strict", "block_flagged_messages": True}

    # Saving the page again with another title and the same moderation logs nothing more.
    response = client.post(
        reverse("research:edit", kwargs={"slug": deliberation.slug}),
        setup_post(
            deliberation,
            [],
            title="A better title",
            moderation_mode="strict",
            block_flagged_messages="on",
        ),
    )
    assert response.status_code == 302
    deliberation.refresh_from_db()
    assert deliberation.title == "A better title"
    assert ModerationAction.objects.filter(deliberation=deliberation).count() == 1

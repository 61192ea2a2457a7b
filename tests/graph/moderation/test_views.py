"""The moderation pages as moderators ("Mo", "Max"), a researcher ("Rhea"), an admin ("Root")
and outsiders see them: who may open and do what on every URL, the queue and its filters, the
actions from an item's page, the log and its CSV."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from elicit.models import ModerationAction, ModerationFlag, StaffAssignment, ValuesCard
from graph.models import CanonicalValue
from graph.moderation import services
from tests.factories import (
    DeliberationFactory,
    ModerationFlagFactory,
    UserFactory,
    staff,
)
from tests.graph.moderation.test_services import NEW_WORDING, value_with_card

pytestmark = pytest.mark.django_db

Role = StaffAssignment.Role


@pytest.fixture
def world():
    """A deliberation with two duplicate values, a flag on a card, and its staff."""
    deliberation = DeliberationFactory(title="Abortion advice")
    a, card_a = value_with_card(deliberation, "Respect her choice")
    b, _card_b = value_with_card(deliberation, "Respecting her choices")
    card = second_card(deliberation, a)
    flag = ModerationFlagFactory(target=card_a, reason="harassment", detail="rules check")
    mo = staff("mo", deliberation, Role.MODERATOR)
    rhea = staff("rhea", deliberation, Role.RESEARCHER)
    other = DeliberationFactory(title="Homework")
    _x, card_x = value_with_card(other, "Other deliberation value")
    other_flag = ModerationFlagFactory(target=card_x, reason="spam_link")
    return {
        "deliberation": deliberation,
        "a": a,
        "b": b,
        "card": card_a,
        "second": card,
        "flag": flag,
        "mo": mo,
        "rhea": rhea,
        "admin": UserFactory(username="root", is_superuser=True, is_staff=True),
        "outsider": staff("oscar", other, Role.MODERATOR),
        "nobody": UserFactory(username="nobody"),
        "other_flag": other_flag,
    }


def second_card(deliberation, value):
    """A second card of *value*, so that a card can be split out of it."""
    from tests.factories import ValuesCardFactory

    card = ValuesCardFactory(deliberation=deliberation, title="Her choice matters most")
    ValuesCard.objects.filter(pk=card.pk).update(canonical=value)
    return card


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def urls(world) -> dict[str, tuple[str, str, dict]]:
    """Every moderation URL: name -> (method, url, data)."""
    flag, card, a, b = world["flag"], world["card"], world["a"], world["b"]
    action = services.record_action(
        actor=None, action="hide", target=a, before={"hidden_at": None}, after={"hidden_at": "x"}
    )
    return {
        "queue": ("get", reverse("moderation:queue"), {}),
        "claim_next": ("post", reverse("moderation:claim_next"), {}),
        "flag": ("get", reverse("moderation:flag", args=[flag.pk]), {}),
        "claim": ("post", reverse("moderation:claim", args=[flag.pk]), {}),
        "release": ("post", reverse("moderation:release", args=[flag.pk]), {}),
        "act": ("post", reverse("moderation:act", args=[flag.pk]), {"action": "approve"}),
        "edit_card": ("get", reverse("moderation:edit_card", args=[card.pk]), {}),
        "split_card": ("post", reverse("moderation:split_card", args=[card.pk]), {}),
        "values": ("get", reverse("moderation:values"), {}),
        "value": ("get", reverse("moderation:value", args=[a.pk]), {}),
        "merge_value": ("post", reverse("moderation:merge_value", args=[a.pk]), {"into": b.pk}),
        "log": ("get", reverse("moderation:log"), {}),
        "log_csv": ("get", reverse("moderation:log_csv"), {}),
        "undo": ("post", reverse("moderation:undo", args=[action.pk]), {}),
    }


READ_ONLY = {"queue", "flag", "values", "value", "log", "log_csv"}


def status_of(user, method, url, data) -> int:
    response = getattr(client_for(user), method)(url, data)
    return response.status_code


def test_every_moderation_url_sends_anonymous_visitors_to_the_login_page(world):
    for name, (method, url, data) in urls(world).items():
        response = getattr(Client(), method)(url, data)
        assert response.status_code == 302, name
        # The staff sign-in page (settings.LOGIN_URL), which admits moderators who are not
        # admin staff.
        assert response["Location"].startswith("/research/login/"), name


def test_every_moderation_url_is_not_found_for_users_without_a_moderation_role(world):
    for name, (method, url, data) in urls(world).items():
        assert status_of(world["nobody"], method, url, data) == 404, name


def test_a_moderator_of_another_deliberation_sees_nothing_of_this_one(world):
    for name, (method, url, data) in urls(world).items():
        status = status_of(world["outsider"], method, url, data)
        if name in {"queue", "values", "log", "log_csv", "claim_next"}:
            assert status in (200, 302), name  # their own (empty of this deliberation) lists
        else:
            assert status == 404, name
    page = client_for(world["outsider"]).get(reverse("moderation:queue")).content.decode()
    assert "Abortion advice" not in page and "Respect her choice" not in page


def test_a_researcher_reads_the_queue_and_log_but_may_act_on_nothing(world):
    for name, (method, url, data) in urls(world).items():
        status = status_of(world["rhea"], method, url, data)
        if name in READ_ONLY:
            assert status == 200, name
        elif name == "claim_next":
            assert status == 302, name  # nothing they may claim: back to the queue
        else:
            assert status == 403, name
    assert not ModerationAction.objects.exclude(actor=None).exists()
    world["flag"].refresh_from_db()
    assert world["flag"].state == ModerationFlag.State.OPEN


@pytest.mark.parametrize("who", ["mo", "admin"])
def test_moderators_and_admins_may_use_every_url(world, who):
    for name, (method, url, data) in urls(world).items():
        status = status_of(world[who], method, url, data)
        assert status in (200, 302), (name, status)


def test_the_queue_shows_each_flag_with_its_reason_and_source_and_filters(world):
    mo = client_for(world["mo"])
    page = mo.get(reverse("moderation:queue")).content.decode()
    assert "Respect her choice" in page and "harassment" in page
    assert "Automatic moderation check" in page
    assert "Other deliberation value" not in page
    filtered = mo.get(reverse("moderation:queue"), {"reason": "spam"}).content.decode()
    assert "Respect her choice" not in filtered
    searched = mo.get(reverse("moderation:queue"), {"q": "her choice"}).content.decode()
    assert "Respect her choice" in searched
    none = mo.get(reverse("moderation:queue"), {"q": "nothing like this"}).content.decode()
    assert "Nothing in this queue." in none
    partial = mo.get(reverse("moderation:queue"), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="queue-rows">')


def test_back_to_a_filtered_queue_htmx_has_no_snapshot_of_gets_the_whole_page(world):
    """The filters push their address into the history; htmx restores an entry it kept no
    snapshot of by asking with HX-Request: the rows alone would replace the whole page."""
    restored = client_for(world["mo"]).get(
        reverse("moderation:queue"),
        {"reason": "harassment"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    html = restored.content.decode()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert 'id="queue-rows"' in html and "Respect her choice" in html


def test_the_queue_is_paginated(world):
    deliberation = world["deliberation"]
    for n in range(55):
        _value, card = value_with_card(deliberation, f"Value number {n} here")
        ModerationFlagFactory(target=card, reason="nonsense")
    mo = client_for(world["mo"])
    first = mo.get(reverse("moderation:queue")).content.decode()
    assert "Page 1 of 2" in first and "56 items" in first
    second = mo.get(reverse("moderation:queue"), {"page": 2}).content.decode()
    assert second.count('href="/moderation/flags/') == 6


def test_a_moderator_hides_an_item_and_moves_on_to_the_next(world):
    deliberation = world["deliberation"]
    _value, next_card = value_with_card(deliberation, "Next in the queue")
    next_flag = ModerationFlagFactory(target=next_card)
    mo = client_for(world["mo"])
    response = mo.post(
        reverse("moderation:act", args=[world["flag"].pk]),
        {"action": "hide", "reason": "insults", "then": "next"},
    )
    assert response["Location"] == reverse("moderation:flag", args=[next_flag.pk])
    world["card"].refresh_from_db()
    assert world["card"].approval == ValuesCard.Approval.HIDDEN
    action = ModerationAction.objects.get(action="hide")
    assert (action.actor, action.reason) == (world["mo"], "insults")
    next_flag.refresh_from_db()
    assert next_flag.claimed_by == world["mo"]


def test_a_second_moderator_opening_a_claimed_item_is_told_and_cannot_act(world):
    max_ = staff("max", world["deliberation"], Role.MODERATOR)
    services.claim(flag_id=world["flag"].pk, user=world["mo"])
    page = client_for(max_).get(reverse("moderation:flag", args=[world["flag"].pk]))
    assert "mo is working on this item" in page.content.decode()
    response = client_for(max_).post(
        reverse("moderation:act", args=[world["flag"].pk]), {"action": "hide"}, follow=True
    )
    assert "Another moderator is working on this item." in response.content.decode()
    world["card"].refresh_from_db()
    assert world["card"].approval == ValuesCard.Approval.APPROVED


def test_banning_needs_a_reason_and_says_so(world):
    response = client_for(world["mo"]).post(
        reverse("moderation:act", args=[world["flag"].pk]), {"action": "ban"}, follow=True
    )
    assert "Please say why the participant is banned." in response.content.decode()
    world["card"].participant.refresh_from_db()
    assert world["card"].participant.banned_at is None


def test_an_invalid_edit_keeps_what_the_moderator_typed(world):
    url = reverse("moderation:edit_card", args=[world["card"].pk])
    response = client_for(world["mo"]).post(
        url, {"title": "", "description": "My careful new description", "policies": "one"}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "My careful new description" in page and "Give the value a short title." in page


def test_a_valid_edit_changes_the_card(world):
    url = reverse("moderation:edit_card", args=[world["card"].pk])
    data = {**NEW_WORDING, "policies": "\n".join(NEW_WORDING["policies"]), "reason": "typo"}
    response = client_for(world["mo"]).post(url, data)
    assert response.status_code == 302
    world["card"].refresh_from_db()
    assert world["card"].title == NEW_WORDING["title"]


def test_merging_from_the_value_page_and_undoing_it_from_the_log(world):
    a, b = world["a"], world["b"]
    mo = client_for(world["mo"])
    response = mo.post(reverse("moderation:merge_value", args=[a.pk]), {"into": b.pk})
    assert response["Location"] == reverse("moderation:value", args=[b.pk])
    assert CanonicalValue.objects.get(pk=a.pk).merged_into == b
    log = mo.get(reverse("moderation:log")).content.decode()
    merge = ModerationAction.objects.get(action="merge")
    assert f'action="/moderation/actions/{merge.pk}/undo/"' in log
    mo.post(reverse("moderation:undo", args=[merge.pk]))
    assert CanonicalValue.objects.get(pk=a.pk).merged_into is None
    log = mo.get(reverse("moderation:log")).content.decode()
    assert "undo merge" in log and f"/moderation/actions/{merge.pk}/undo/" not in log


def test_merging_without_choosing_a_value_says_so(world):
    response = client_for(world["mo"]).post(
        reverse("moderation:merge_value", args=[world["a"].pk]), {"into": "x"}
    )
    assert response.status_code == 422
    assert "Choose the value to merge this one into." in response.content.decode()


def test_the_log_downloads_as_csv_with_formulas_neutralised(world):
    services.hide(actor=world["mo"], target=world["a"], reason='=HYPERLINK("http://evil")')
    response = client_for(world["mo"]).get(reverse("moderation:log_csv"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["id", "created_at", "deliberation", "actor", "action"]
    hide = next(row for row in rows[1:] if row[4] == "hide")
    assert hide[3] == "mo"
    assert hide[8] == '\'=HYPERLINK("http://evil")'
    assert '"hidden_at": null' in hide[9]


def test_the_log_of_a_moderator_holds_only_their_deliberations(world):
    services.hide(actor=world["admin"], target=world["other_flag"].target, reason="spam")
    services.hide(actor=world["mo"], target=world["a"], reason="mine")
    rows = b"".join(client_for(world["mo"]).get(reverse("moderation:log_csv")).streaming_content)
    assert b"mine" in rows and b"spam" not in rows


def test_the_admin_home_page_links_the_moderation_queue(world):
    page = client_for(world["admin"]).get("/admin/").content.decode()
    assert 'href="/moderation/"' in page and "Moderation log" in page


def test_the_page_of_each_kind_of_item_shows_it_with_the_actions_that_apply(world):
    from elicit.models import Message
    from tests.factories import HypothesisFactory, InterviewFactory
    from tests.graph.moderation.test_services import judge

    deliberation = world["deliberation"]
    interview = InterviewFactory(participant__deliberation=deliberation)
    message = Message.objects.create(
        interview=interview, seq=1, role="participant", content="Buy cheap pills at spam.example"
    )
    story = HypothesisFactory(deliberation=deliberation, story="She learned to listen first.")
    judgment = judge(interview.participant, story)
    type(judgment).objects.filter(pk=judgment.pk).update(comment="What a stupid story")
    expected = {
        message: ["Buy cheap pills", "Ban the author", "Hide"],
        world["a"]: ["Respect her choice", "merge it into another value", "Hide"],
        story: ["She learned to listen first.", "Hide"],
        judgment: ["What a stupid story", "Ban the author"],
        interview.participant: [str(interview.participant.public_id), "Ban this participant"],
    }
    mo = client_for(world["mo"])
    for target, texts in expected.items():
        flag = ModerationFlagFactory(target=target, source="report", reason="offensive")
        page = mo.get(reverse("moderation:flag", args=[flag.pk])).content.decode()
        for text in texts:
            assert text in page, (target, text)

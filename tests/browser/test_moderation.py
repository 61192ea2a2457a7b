"""A moderator ("Mo") in real Chromium: logs in, works through the queue (approve, then hide,
each time moving on to the next item), filters it, merges two duplicate values and undoes the
merge from the log."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from elicit.models import (
    ModerationAction,
    ModerationFlag,
    StaffAssignment,
    ValuesCard,
)
from graph.models import CanonicalValue, UpgradeHypothesis, WisestVote
from tests.factories import (
    ContextFactory,
    DeliberationFactory,
    HypothesisFactory,
    ModerationFlagFactory,
    ParticipantFactory,
    QuestionFactory,
    UserFactory,
)
from tests.graph.moderation.test_services import judge, value_with_card

PASSWORD = "correct horse battery staple"


def seed() -> dict:
    """A deliberation with duplicates A and B, a third value X, votes and a judged story that
    touch A, two flagged cards, and Mo assigned as moderator."""
    deliberation = DeliberationFactory(title="Abortion advice", slug="abortion")
    question = QuestionFactory(deliberation=deliberation)
    a, card_a = value_with_card(deliberation, "Respect her own choice", question=question)
    b, _card_b = value_with_card(deliberation, "Respecting her choices", question=question)
    x, card_x = value_with_card(deliberation, "Protect every life", question=question)
    bo = ParticipantFactory(deliberation=deliberation)
    vote = WisestVote.objects.create(participant=bo, question=question)
    vote.shown.set([a, x])
    vote.chosen.set([a])
    story = HypothesisFactory(
        deliberation=deliberation,
        context=ContextFactory(deliberation=deliberation),
        from_value=a,
        to_value=x,
    )
    judge(bo, story)
    ModerationFlagFactory(target=card_x, reason="spam_link", detail="rules check")
    ModerationFlagFactory(target=card_a, reason="shouting", detail="rules check")
    mo = UserFactory(username="mo", is_staff=True)
    mo.set_password(PASSWORD)
    mo.save()
    StaffAssignment.objects.create(user=mo, deliberation=deliberation, role="moderator")
    return {"a": a.pk, "b": b.pk, "x": x.pk, "card_a": card_a.pk, "card_x": card_x.pk}


def log_in(page: Page) -> None:
    page.goto("/moderation/")
    # The staff sign-in page (settings.LOGIN_URL), which admits moderators who are not
    # admin staff.
    expect(page).to_have_url(re.compile(r"/research/login/"))
    page.get_by_label("Username").fill("mo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/moderation/$"))


def merge_state(a: int) -> tuple:
    value = CanonicalValue.objects.get(pk=a)
    return (
        value.merged_into_id,
        sorted(ValuesCard.objects.filter(canonical_id=a).values_list("pk", flat=True)),
        WisestVote.objects.filter(shown=a).count(),
        UpgradeHypothesis.objects.filter(from_value_id=a, judgments__isnull=False).count(),
    )


def test_a_moderator_works_the_queue_merges_two_values_and_undoes_it(browser_page, orm):
    page = browser_page
    ids = orm(seed)
    log_in(page)

    queue = page.locator("#queue-rows")
    expect(queue).to_contain_text("2 items")
    expect(queue).to_contain_text("Protect every life")
    expect(queue).to_contain_text("spam_link")
    expect(queue).to_contain_text("Automatic moderation check")

    # The filter swaps the rows in place (htmx) and keeps the URL shareable.
    page.get_by_label("Reason").select_option("shouting")
    expect(queue).to_contain_text("1 item")
    expect(queue).not_to_contain_text("Protect every life")
    expect(page).to_have_url(re.compile(r"reason=shouting"))
    page.get_by_label("Reason").select_option("")
    expect(queue).to_contain_text("2 items")

    # Oldest first: the spam-link card. Approve it and move on.
    page.get_by_role("button", name="Take the next item").click()
    expect(page.get_by_role("heading", name="Values card")).to_be_visible()
    expect(page.locator("article.values-card")).to_contain_text("Protect every life")
    page.get_by_label("Why (kept in the log; needed to ban)").fill("a link to a charity, fine")
    page.get_by_role("button", name="Approve").click()

    # The next item opened by itself: hide it.
    expect(page.locator("article.values-card")).to_contain_text("Respect her own choice")
    expect(page.get_by_text("Done. The action is in the log")).to_be_visible()
    page.get_by_label("Why (kept in the log; needed to ban)").fill("all capitals")
    page.get_by_role("button", name="Hide").click()
    expect(page.get_by_text("Nothing left to claim in this queue.")).to_be_visible()
    expect(page.locator("#queue-rows")).to_contain_text("Nothing in this queue.")
    flags = orm(lambda: sorted(ModerationFlag.objects.values_list("reason", "state")))
    assert flags == [("shouting", "actioned"), ("spam_link", "approved")]
    hidden = orm(ValuesCard.objects.get, pk=ids["card_a"])
    assert hidden.approval == ValuesCard.Approval.HIDDEN

    # Merge A into B from A's page.
    before = orm(merge_state, ids["a"])
    page.get_by_role("link", name="Values").click()
    page.get_by_role("link", name="Respect her own choice").click()
    page.get_by_label("The value it is the same as").select_option(
        label=f"Respecting her choices (#{ids['b']})"
    )
    page.get_by_label("Why (kept in the log)").fill("the same value in other words")
    page.get_by_role("button", name="Merge").click()
    expect(page.get_by_text("was merged into")).to_be_visible()
    expect(page.get_by_text("Merged into this one")).to_be_visible()
    merged = orm(merge_state, ids["a"])
    assert merged == (ids["b"], [], 0, 0)

    # Undo it from the log: everything is back where it was.
    page.get_by_role("link", name="Log").click()
    row = page.locator("tr", has_text="the same value in other words")
    expect(row).to_contain_text("merge")
    row.get_by_role("button", name="Undo").click()
    expect(page.get_by_text("Undone. The undo is in the log too.")).to_be_visible()
    expect(page.locator("tbody tr").first).to_contain_text("undo merge")
    expect(page.locator("tr", has_text="the same value in other words")).to_contain_text("undone")
    assert orm(merge_state, ids["a"]) == before
    actions = orm(
        lambda: list(
            ModerationAction.objects.order_by("id").values_list("action", "actor__username")
        )
    )
    assert actions == [
        ("approve", "mo"),
        ("hide", "mo"),
        ("merge", "mo"),
        ("undo merge", "mo"),
    ]

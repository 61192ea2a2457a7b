"""The graph explorer in a real browser, as a researcher ("Rhea") uses it: the wheel zooms, a
drag pans, the buttons zoom and reset, a click on a value shows its card and upgrades without
leaving the page, and the filters redraw the graph. Without JavaScript a click opens the
value's page. And a participant ("Ada") at the end of her journey: her value in the graph, the
survey, the completion code. Every page is checked for CSP violations by the conftest."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, expect

from elicit.models import StaffAssignment
from elicit.services import SESSION_KEY
from tests.factories import JudgmentFactory, UserFactory
from tests.graph.scored import scored_deliberation


@pytest.fixture
def scored(orm):
    return orm(scored_deliberation, completion_code="C0DE-4711")


def session_cookie(orm, live_server_url: str, setup) -> dict:
    """A session made by the test client (logged in, or holding a participant), for the
    browser."""

    def make() -> str:
        client = Client()
        setup(client)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return {"name": settings.SESSION_COOKIE_NAME, "value": orm(make), "url": live_server_url}


@pytest.fixture
def rhea_cookie(orm, live_server_url, scored):
    def log_in(client):
        rhea = UserFactory(username="rhea")
        StaffAssignment.objects.create(
            user=rhea, deliberation=scored.deliberation, role=StaffAssignment.Role.RESEARCHER
        )
        client.force_login(rhea)

    return session_cookie(orm, live_server_url, log_in)


def view_box(page: Page) -> list[float]:
    return [float(n) for n in page.locator("svg.moral-graph").get_attribute("viewBox").split()]


def centre(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_rhea_zooms_pans_and_opens_a_value_without_leaving_the_page(new_page, scored, rhea_cookie):
    page = new_page()
    page.context.add_cookies([rhea_cookie])
    url = f"/research/d/{scored.deliberation.slug}/explorer/"
    page.goto(url)
    expect(page.get_by_role("heading", name="Graph explorer")).to_be_visible()
    graph = page.locator("svg.moral-graph")
    expect(graph).to_be_visible()
    home, home_text = view_box(page), graph.get_attribute("viewBox")

    # The wheel zooms around the pointer: the value under it stays under it, both in the
    # preview (a CSS transform, at once) and once the viewBox follows (when the wheel settles).
    circle = page.locator(f'a.node[data-value="{scored.values["care"].pk}"] circle')
    x, y = centre(circle)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -400)
    assert centre(circle) == pytest.approx((x, y), abs=3)
    expect(graph).not_to_have_attribute("viewBox", home_text)
    assert centre(circle) == pytest.approx((x, y), abs=3)
    zoomed = view_box(page)
    assert zoomed[2] < home[2] and zoomed[3] < home[3]  # zoomed in: a smaller box

    # A drag from an empty corner of the picture moves the box, not its size.
    box = graph.bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 70, steps=5)
    page.mouse.up()
    panned = view_box(page)
    assert panned[0] < zoomed[0] and panned[1] < zoomed[1]  # the picture moved right, down
    assert panned[2:] == pytest.approx(zoomed[2:], abs=0.2)

    page.get_by_role("button", name="Reset").click()
    assert view_box(page) == pytest.approx(home, abs=0.2)
    page.get_by_role("button", name="Zoom out").click()
    assert view_box(page)[2] > home[2]
    page.get_by_role("button", name="Reset").click()

    care = scored.values["care"].pk
    page.evaluate("window.sameDocument = true")
    page.locator(f'a.node[data-value="{care}"] circle').click()
    detail = page.locator("#explorer-detail")
    expect(detail.get_by_role("heading", name="Care without judgment")).to_be_visible()
    expect(detail).to_contain_text("Upgrade into this value (1)")
    expect(detail).to_contain_text("She once cared about plain facts")
    expect(detail).to_contain_text("Votes: 3 upgrade, 1 not an upgrade, 0 not sure.")
    expect(detail).to_contain_text("Caring, she came to trust the person to decide.")
    expect(page).to_have_url(re.compile(rf"/explorer/value/{care}/$"))  # the value's address
    assert page.evaluate("window.sameDocument")  # htmx swapped the detail in; no page load
    expect(page.locator(f'a.node.selected[data-value="{care}"]')).to_have_count(1)

    # From the detail, on to the value it upgrades to: marked in the graph too.
    detail.get_by_role("link", name="Trusting her to decide").click()
    expect(detail.get_by_role("heading", name="Trusting her to decide")).to_be_visible()
    autonomy = scored.values["autonomy"].pk
    expect(page.locator(f'a.node.selected[data-value="{autonomy}"]')).to_have_count(1)
    expect(page.locator("a.node.selected")).to_have_count(1)

    # The question filter redraws the graph without the other question's own context.
    facts, history = scored.values["facts"].pk, scored.values["history"].pk
    edge = page.locator(f'line[data-from="{history}"][data-to="{facts}"]')
    expect(edge).to_have_count(1)
    page.get_by_label("Question").select_option("abortion")
    expect(page).to_have_url(re.compile(r"\?question=abortion"))
    expect(edge).to_have_count(0)
    expect(page.locator(f'a.node[data-value="{care}"]')).to_have_count(1)


def test_back_steps_through_the_values_rhea_selected(new_page, scored, rhea_cookie):
    page = new_page()
    page.context.add_cookies([rhea_cookie])
    explorer = f"/research/d/{scored.deliberation.slug}/explorer/?question=abortion"
    page.goto(explorer)
    care, facts = scored.values["care"].pk, scored.values["facts"].pk
    heading = page.locator("#explorer-detail h2")
    page.evaluate("window.sameDocument = true")

    page.locator(f'a.node[data-value="{care}"] circle').click()
    expect(heading).to_have_text("Care without judgment")
    page.locator(f'a.node[data-value="{facts}"] circle').click()
    expect(heading).to_have_text("Plain facts first")
    expect(page).to_have_url(re.compile(rf"/explorer/value/{facts}/\?question=abortion$"))

    # Back: the first value again, its detail and its mark, without leaving the page.
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/explorer/value/{care}/\?question=abortion$"))
    expect(heading).to_have_text("Care without judgment")
    expect(page.locator("a.node.selected")).to_have_attribute("data-value", str(care))
    assert page.evaluate("window.sameDocument")
    # Back again: the explorer as it was opened, nothing selected.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/explorer/\?question=abortion$"))
    expect(page.locator("#explorer-detail")).to_contain_text("Click a value to see its card")
    expect(page.locator("a.node.selected")).to_have_count(0)

    # Forward again, with htmx's snapshots gone (too big for its cache, say): the server
    # draws the page of that selection whole, as a reload would.
    page.evaluate("sessionStorage.removeItem('htmx-history-cache')")
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"/explorer/value/{care}/\?question=abortion$"))
    expect(heading).to_have_text("Care without judgment")
    expect(page.get_by_role("heading", name="Graph explorer")).to_have_count(1)
    expect(page.locator("a.node.selected")).to_have_attribute("data-value", str(care))
    expect(page.locator("#filter-question")).to_have_value("abortion")

    # A reload of that address, or a link to it, opens the same selection.
    page.reload()
    expect(heading).to_have_text("Care without judgment")
    expect(page.locator("a.node.selected")).to_have_attribute("data-value", str(care))


def test_without_javascript_a_click_on_a_value_opens_its_page(new_page, scored, rhea_cookie):
    page = new_page(java_script_enabled=False)
    page.context.add_cookies([rhea_cookie])
    page.goto(f"/research/d/{scored.deliberation.slug}/explorer/")
    care = scored.values["care"].pk
    page.locator(f'a.node[data-value="{care}"] circle').click()
    expect(page).to_have_url(re.compile(rf"/explorer/value/{care}/$"))
    expect(
        page.locator("#explorer-detail").get_by_role("heading", name="Care without judgment")
    ).to_be_visible()


def test_ada_sees_her_value_in_the_graph_answers_the_survey_and_gets_her_code(
    new_page, orm, live_server_url, scored
):
    ada = scored.authors["care"]
    orm(JudgmentFactory, hypothesis=scored.stories["history>facts"], participant=ada)

    def hold_ada(client):
        session = client.session
        session[SESSION_KEY] = {str(ada.deliberation_id): ada.pk}
        session.save()

    page = new_page()
    page.context.add_cookies([session_cookie(orm, live_server_url, hold_ada)])
    page.goto(f"/d/{scored.deliberation.slug}/done/")
    expect(page.get_by_role("heading", name="Where your value sits")).to_be_visible()
    expect(page.locator("svg.moral-graph .node.mine")).to_have_count(1)
    box = page.locator("svg.moral-graph").get_attribute("viewBox")
    page.get_by_role("button", name="Zoom in").click()
    assert page.locator("svg.moral-graph").get_attribute("viewBox") != box

    page.get_by_role("button", name="Send my answers").click()  # nothing chosen: told
    expect(page.get_by_role("alert")).to_be_visible()
    for statement in (
        "I feel my values were represented",
        "The result is fair",
        "Taking part clarified",
        "I trust this process",
    ):
        page.get_by_role("group", name=re.compile(statement)).get_by_label(
            "Agree", exact=True
        ).check()
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_text("C0DE-4711")).to_be_visible()
    receipt = page.locator("#receipt a")
    expect(receipt).to_have_attribute("href", re.compile(rf"{ada.receipt_token}/$"))

    # Her personal link shows the same place, in a browser that never took part.
    stranger = new_page()
    stranger.goto(receipt.get_attribute("href"))
    expect(stranger.get_by_role("heading", name="Your value in the moral graph")).to_be_visible()
    expect(stranger.locator("svg.moral-graph .node.mine")).to_have_count(1)

"""A participant's journey in a real browser: from the home page, through consent and the
interview over the websocket, to a confirmed values card. Also without JavaScript, against a
(fake) language model that streams, and with markup typed as a message."""

from __future__ import annotations

import html
import re
import time

import pytest
from playwright.sync_api import Page, expect

from elicit import scripted
from elicit.demo import seed_demo
from elicit.models import Interview, Message, ValuesCard

ANSWERS = [
    "Whether the person feels safe and heard.",
    "A friend of mine faced this at nineteen; she felt very alone.",
    "I paid attention to whether she felt judged. I noticed when she hesitated.",
    # Not in capitals: see the report on elicit/moderation.py's "shouting" rule.
    "Moments when she feels judged\nSigns of fear in her voice\nOpportunities to let her decide",
    "Support without judgment",
]

CARD = {
    "title": "Support without any judgment",
    "description": "Being there for someone so that they can decide for themselves.",
    "policies": [
        "MOMENTS when she feels judged",
        "SIGNS of fear in her voice",
        "OPPORTUNITIES to let her decide",
    ],
}

CONSENT = "I have read the above and agree to take part."
CONFIRM = "This is my value: confirm"


@pytest.fixture
def demo(orm):
    deliberation, _created = orm(seed_demo)
    return deliberation


class Frames:
    """What the server sent the page over its websocket."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.received: list[str] = []
        page.on("websocket", self._opened)

    def _opened(self, websocket) -> None:
        websocket.on("framereceived", lambda payload: self.received.append(str(payload)))

    def wait_for(self, fragment: str, *, since: int = 0, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while fragment not in "".join(self.received[since:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no websocket frame with {fragment!r}")
            self.page.wait_for_timeout(25)  # lets Playwright deliver events meanwhile


class Requests:
    """The form posts the page made (a websocket send makes none)."""

    def __init__(self, page: Page) -> None:
        self.posts: list[str] = []
        page.on("request", lambda r: self.posts.append(r.url) if r.method == "POST" else None)


def join_the_demo(page: Page) -> None:
    """From the home page, through the consent form, to the interview."""
    page.goto("/")
    page.get_by_role("link", name="Take part").click()
    expect(page).to_have_url(re.compile(r"/d/demo/$"))
    page.get_by_label(CONSENT).check()
    page.get_by_role("button", name="Start the interview").click()
    expect(page).to_have_url(re.compile(r"/d/demo/interview/"))


def connected(page: Page, frames: Frames) -> None:
    """The page opened its websocket and the server sent the catch-up state."""
    frames.wait_for('id="transcript"')
    assert page.evaluate("typeof window.htmx") == "object", "htmx did not load"
    # Any navigation from now on would drop this mark.
    page.evaluate("window.noNavigationSince = true")


def still_the_same_page(page: Page) -> bool:
    return page.evaluate("window.noNavigationSince === true")


def say(page: Page, text: str) -> None:
    page.get_by_label("Your answer").fill(text)
    page.get_by_role("button", name="Send").click()


def interviewer_says(page: Page, text: str) -> None:
    """The interviewer's latest message is `text`, complete, and the participant may answer."""
    expect(page.locator("#transcript .msg.interviewer").last).to_contain_text(text)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def leaves_the_interview_with_the_card_saved(page: Page, title: str) -> None:
    """The next step after the card (the graph's matching step when close values exist,
    otherwise the thank-you page) shows the participant's card as saved."""
    expect(page).not_to_have_url(re.compile(r"/interview/$"))
    expect(page.locator(".values-card").first.get_by_role("heading")).to_have_text(title)


def test_a_participant_talks_with_the_scripted_interviewer_and_saves_the_card_they_edited(
    browser_page, no_llm, demo, orm
):
    page = browser_page
    frames = Frames(page)
    posts = Requests(page)
    join_the_demo(page)

    question = page.locator("blockquote.question").inner_text()
    assert question in orm(lambda: [q.text for q in demo.questions.all()])
    expect(page.locator("#transcript .msg.interviewer").first).to_contain_text(question)
    expect(page.get_by_text("This interview runs without a language model")).to_be_visible()
    connected(page, frames)

    replies = [*scripted.questions(), scripted.card_ready_message()]
    for answer, reply in zip(ANSWERS, replies, strict=True):
        before = len(frames.received)
        say(page, answer)
        expect(page.locator("#transcript .msg.participant").last).to_contain_text(
            answer.splitlines()[0]
        )
        interviewer_says(page, reply)
        frames.wait_for(html.escape(reply), since=before)  # the reply came over the websocket
        expect(page.get_by_label("Your answer")).to_have_value("")
    assert still_the_same_page(page), "the page navigated: the messages went as form posts"
    assert not [url for url in posts.posts if "/send/" in url]
    expect(page.locator("#transcript .msg")).to_have_count(11)

    card = page.locator("#card-section .values-card")
    expect(card).to_be_visible()
    expect(card.get_by_role("heading", name="Your values card")).to_be_visible()
    expect(card.get_by_label("Title")).to_have_value("Support without judgment")
    expect(card.get_by_label("Description")).to_have_value(re.compile("whether she felt judged"))
    expect(card.get_by_label("What you pay attention to (one per line)")).to_have_value(
        "Moments when she feels judged\nSigns of fear in her voice\nOpportunities to let her decide"
    )

    card.get_by_label("Title").fill("Support, never judgment")
    card.get_by_role("button", name=CONFIRM).click()

    leaves_the_interview_with_the_card_saved(page, "Support, never judgment")
    expect(page.locator(".values-card").first).to_contain_text("Opportunities to let her decide")

    stored = orm(ValuesCard.objects.select_related("interview").get)
    assert stored.title == "Support, never judgment"
    assert stored.policies == ANSWERS[3].splitlines()
    assert stored.interview.status == Interview.Status.COMPLETED


def test_the_language_models_reply_streams_into_the_page_and_its_card_can_be_confirmed(
    browser_page, llm, demo, orm
):
    page = browser_page
    frames = Frames(page)
    join_the_demo(page)
    connected(page, frames)

    reply = (
        "Thank you for sharing that. I would like to understand what you pay attention to "
        "when someone close to you is facing a hard choice like this one, and what a wise "
        "friend would notice in that moment. Can you tell me about a time this happened?"
    )
    llm.queue_text(reply, tokens_per_second=20)  # 47 tokens: about two and a half seconds
    say(page, "I think her safety and her own choice matter most.")

    # Sample what the participant sees of the reply while it arrives.
    lengths: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = page.evaluate(
            """() => {
                const last = [...document.querySelectorAll("#transcript .msg.interviewer")].pop();
                return {streaming: last.classList.contains("streaming"),
                        length: last.querySelector(".body").textContent.length};
            }"""
        )
        if state["streaming"]:
            lengths.append(state["length"])
        elif lengths:
            break
        page.wait_for_timeout(100)
    interviewer_says(page, reply)
    growth = sorted(set(lengths))
    assert lengths == sorted(lengths), f"the reply shrank while streaming: {lengths}"
    assert len([n for n in growth if 0 < n < len(reply)]) >= 4, (
        f"the reply did not appear progressively: lengths seen while streaming {lengths}"
    )
    assert still_the_same_page(page)

    llm.queue_tool_call(
        "submit_values_card", CARD, text_before="Here is a card made from what you said."
    )
    say(page, "Mostly that she is not judged, and that the choice stays hers.")
    interviewer_says(page, "The interviewer proposed a values card")
    card = page.locator("#card-section .values-card form")
    expect(card.get_by_label("Title")).to_have_value(CARD["title"])
    expect(card.get_by_label("Description")).to_have_value(CARD["description"])
    expect(card.get_by_label("What you pay attention to (one per line)")).to_have_value(
        "\n".join(CARD["policies"])
    )
    assert still_the_same_page(page)

    card.get_by_role("button", name=CONFIRM).click()
    leaves_the_interview_with_the_card_saved(page, CARD["title"])
    stored = orm(ValuesCard.objects.get)
    assert (stored.title, stored.policies) == (CARD["title"], CARD["policies"])
    assert stored.prompt_version == "interviewer-v1"


def test_without_javascript_the_participant_joins_and_talks_through_plain_forms(
    new_page, no_llm, demo, orm
):
    page = new_page(java_script_enabled=False)
    join_the_demo(page)
    expect(page.locator("#transcript .msg.interviewer")).to_have_count(1)

    say(page, ANSWERS[0])

    expect(page).to_have_url(re.compile(r"/d/demo/interview/\?q=[\w-]+$"))  # a new page
    expect(page.locator("#transcript .msg.participant .body")).to_have_text([ANSWERS[0]])
    expect(page.locator("#transcript .msg.interviewer").last).to_contain_text(
        scripted.questions()[0]
    )
    expect(page.get_by_label("Your answer")).to_have_value("")
    messages = orm(lambda: list(Message.objects.order_by("seq").values_list("role", flat=True)))
    assert messages == ["interviewer", "participant", "interviewer"]


XSS = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"]


def test_markup_typed_as_a_message_shows_as_text_and_never_runs(browser_page, no_llm, demo):
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    frames = Frames(page)
    join_the_demo(page)
    connected(page, frames)

    for payload, reply in zip(XSS, scripted.questions()[: len(XSS)], strict=True):
        say(page, payload)
        interviewer_says(page, reply)

    def shows_the_payloads_as_text() -> None:
        expect(page.locator("#transcript .msg.participant .body")).to_have_text(XSS)
        expect(page.locator("#transcript img, #transcript script")).to_have_count(0)

    shows_the_payloads_as_text()  # as the websocket delivered them
    page.reload()
    shows_the_payloads_as_text()  # as the server renders the stored messages
    page.wait_for_timeout(300)  # time for an injected handler to fire, if there were one
    assert dialogs == []


def others_values_and_stories(deliberation) -> list[str]:
    """Three other participants' values for the first question, and stories between them in
    one of its contexts: what the vote and the judgments need."""
    from graph.models import CanonicalValue, UpgradeHypothesis
    from tests.factories import ParticipantFactory, ValuesCardFactory

    question = deliberation.questions.get(slug="abortion")
    context = question.contexts.first()
    themes = [
        ("Honest medical facts", "Giving her accurate facts about the procedure and its risks."),
        ("Faith as a resource", "Helping her draw on her faith without deciding for her."),
        ("Room to decide alone", "Protecting her space to decide without outside pressure."),
    ]
    values = []
    for title, description in themes:
        card = ValuesCardFactory(
            deliberation=deliberation,
            question=question,
            participant=ParticipantFactory(deliberation=deliberation),
            title=title,
            description=description,
            policies=[f"MOMENTS when {title.lower()} matters", "SIGNS she wants to talk"],
        )
        value = CanonicalValue.objects.create(
            deliberation=deliberation,
            title=title,
            description=description,
            policies=card.policies,
            representative=card,
        )
        card.canonical = value
        card.save()
        values.append(value)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        UpgradeHypothesis.objects.create(
            deliberation=deliberation,
            context=context,
            from_value=values[a],
            to_value=values[b],
            story=f"She once cared about {values[a].title.lower()}...",
        )
    return [value.title for value in values]


def test_after_the_card_the_participant_votes_judges_stories_and_finishes(
    browser_page, no_llm, demo, orm
):
    from graph.models import UpgradeJudgment, WisestVote

    titles = orm(others_values_and_stories, demo)
    page = browser_page
    frames = Frames(page)
    join_the_demo(page)
    connected(page, frames)
    for answer in ANSWERS:
        say(page, answer)
        expect(page.locator("#transcript .msg.participant").last).to_contain_text(
            answer.splitlines()[0]
        )
    card = page.locator("#card-section .values-card")
    expect(card).to_be_visible()
    card.get_by_role("button", name=CONFIRM).click()

    if "/match/" in page.url:  # close values were found: keep the participant's own
        page.get_by_role("button", name="None of these: keep mine as it is").click()
    expect(page.get_by_role("heading", name="Which values are wisest?")).to_be_visible()
    for title in titles:
        expect(page.get_by_text(title).first).to_be_visible()
    page.get_by_role("button", name="Continue").click()  # nothing ticked: told, not lost
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label(titles[0]).check()
    page.get_by_role("button", name="Continue").click()

    thanks = page.get_by_role("heading", name="Thank you for taking part")
    expect(page.get_by_role("heading", name="Did this person become wiser?")).to_be_visible()
    answered = 0
    while not thanks.count():
        answered += 1
        assert answered <= 3, "more stories than pairs exist"
        expect(page.get_by_text(f"Story {answered} of")).to_be_visible()
        expect(page.get_by_text("She once cared about").first).to_be_visible()
        page.get_by_label("Yes, this person became wiser").check()
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_text(f"Story {answered + 1} of").or_(thanks)).to_be_visible()
    expect(page.get_by_role("heading", name="Thank you for taking part")).to_be_visible()

    vote = orm(lambda: WisestVote.objects.prefetch_related("chosen").get())
    assert [v.title for v in orm(lambda: list(vote.chosen.all()))] == [titles[0]]
    verdicts = orm(lambda: list(UpgradeJudgment.objects.values_list("verdict", flat=True)))
    assert verdicts and set(verdicts) == {"upgrade"}
    assert len(verdicts) == answered

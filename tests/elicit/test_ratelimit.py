"""Rate limits on every participant write (per participant and per client address), on the
websocket, on joining, and the throttling of failed admin logins. Personas: Ada and Bo are
participants behind the same address; Mallory floods; Rhea is an admin."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import authenticate, get_user_model
from django.test import Client, RequestFactory

from elicit import ratelimit
from elicit.demo import seed_demo
from elicit.login import ThrottledLoginForm
from elicit.models import Message, Participant
from graph.models import UpgradeJudgment
from tests.elicit.helpers import collect, communicator, join, live_interview, send
from tests.factories import HypothesisFactory

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Every hit in one window: a test straddling a minute's edge would start a new one."""
    clock = {"now": 1_800_000_030.0}
    monkeypatch.setattr("elicit.ratelimit.now", lambda: clock["now"])
    return clock


@pytest.fixture
def demo(transactional_db, no_llm):
    return seed_demo()[0]


def story_for(browser):
    context = browser.interview.question.contexts.first()
    return HypothesisFactory(deliberation=browser.participant.deliberation, context=context)


def test_a_participant_going_too_fast_gets_429_and_what_they_entered_is_kept(demo, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 2
    ada = join()
    for _ in range(2):
        ada.client.post("/d/demo/vote/", {"value": ["1"]})

    response = ada.client.post(
        "/d/demo/judge/", {"judgment": "7", "verdict": "upgrade", "comment": "Kept, every word"}
    )

    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "You are going very fast. Please wait 30 seconds" in page
    # A button sends the same answer again, to the same place.
    assert 'action="/d/demo/judge/"' in page
    assert '<input type="hidden" name="comment" value="Kept, every word">' in page
    assert '<input type="hidden" name="verdict" value="upgrade">' in page


def test_an_htmx_request_gets_just_the_notice_and_its_form_is_left_alone(demo, settings, clock):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 1
    ada = join()
    hypothesis = story_for(ada)
    judgment = UpgradeJudgment.objects.create(
        participant=ada.participant,
        hypothesis=hypothesis,
        context=hypothesis.context,
        pair_key=hypothesis.pair_key,
    )
    answer = {"judgment": judgment.pk, "verdict": "upgrade", "comment": "mine"}
    ada.client.post("/d/demo/vote/", {}, **HTMX)

    response = ada.client.post("/d/demo/judge/", answer, **HTMX)

    assert response.status_code == 429
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#notices", "innerHTML")
    assert "You are going very fast" in response.content.decode()
    assert "<form" not in response.content.decode()
    judgment.refresh_from_db()
    assert judgment.verdict == ""  # nothing was recorded
    # A minute later the same answer goes through.
    clock["now"] += 60
    assert ada.client.post("/d/demo/judge/", answer, **HTMX).status_code == 200
    judgment.refresh_from_db()
    assert (judgment.verdict, judgment.comment) == ("upgrade", "mine")


def test_the_survey_is_limited_like_every_other_write(demo, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 1
    ada = join()
    ada.client.post("/d/demo/vote/")
    response = ada.client.post("/d/demo/done/", {"felt_represented": "4", "comment": "Fair"})
    assert response.status_code == 429
    assert '<input type="hidden" name="comment" value="Fair">' in response.content.decode()


def test_the_limit_is_per_participant(demo, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 2
    ada, bo = join(), join()
    for _ in range(2):
        assert ada.client.post("/d/demo/vote/").status_code != 429
    assert ada.client.post("/d/demo/vote/").status_code == 429
    assert bo.client.post("/d/demo/vote/").status_code != 429


def test_the_limit_per_address_counts_everyone_behind_it(demo, settings):
    settings.RATE_LIMIT_ADDRESS_PER_MINUTE = 5  # two joins, then three writes
    ada, bo = join(), join()
    ada.client.post("/d/demo/vote/")
    bo.client.post("/d/demo/vote/")
    ada.client.post("/d/demo/vote/")
    assert bo.client.post("/d/demo/vote/").status_code == 429
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    elsewhere.post("/d/demo/join/", {"consent": "on"})
    assert elsewhere.post("/d/demo/vote/").status_code != 429


def test_joining_is_limited_per_address_per_hour_and_the_answers_are_kept(demo, settings):
    settings.RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR = 2
    join(), join()
    mallory = Client()
    response = mallory.post(
        "/d/demo/join/",
        {"consent": "on", "demo_political_affiliation": "Other", "PROLIFIC_PID": "M1"},
    )
    assert response.status_code == 429
    assert '<input type="hidden" name="demo_political_affiliation" value="Other">' in (
        response.content.decode()
    )
    assert int(response["Retry-After"]) == 3600 - 30
    assert Participant.objects.count() == 2


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(demo, settings):
    settings.RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def join_from(address):
        return Client(**proxy, HTTP_X_FORWARDED_FOR=address).post(
            "/d/demo/join/", {"consent": "on"}
        )

    # Without a trusted proxy the header is ignored: everyone is 10.0.0.1 (it cannot be forged).
    assert join_from("198.51.100.1").status_code == 302
    assert join_from("198.51.100.2").status_code == 429
    settings.TRUSTED_PROXY_COUNT = 1
    assert join_from("198.51.100.3").status_code == 302
    assert join_from("forged, 198.51.100.4").status_code == 302
    assert join_from("198.51.100.3").status_code == 429


def test_the_client_address_is_the_one_the_trusted_proxies_saw(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.0.0.1"
    )
    assert ratelimit.client_address(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 2
    assert ratelimit.client_address(request) == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 4  # fewer hops than proxies: the header is not trusted
    assert ratelimit.client_address(request) == "10.0.0.2"


async def test_websocket_messages_are_limited_and_the_composer_keeps_the_text(no_llm, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 2  # the connection, then one message
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    async with live_interview(ada) as comm:
        await send(comm, "My first answer")
        await collect(comm, lambda text: "My first answer" in text)
        await send(comm, "One answer too many")
        frames = "".join(await collect(comm, lambda text: "very fast" in text))

    assert 'id="composer-error"' in frames
    assert "One answer too many" not in frames  # not echoed: the composer still holds it
    assert not await Message.objects.filter(content="One answer too many").aexists()
    assert await Message.objects.filter(content="My first answer").aexists()


async def test_asking_for_the_reply_again_counts_as_a_write_too(no_llm, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 1  # the connection itself takes it
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    async with live_interview(ada) as comm:
        await comm.send_json_to({"action": "retry"})
        frames = "".join(await collect(comm, lambda text: "very fast" in text))
    assert 'id="composer-error"' in frames


async def test_websocket_connections_are_limited_too(no_llm, settings):
    settings.RATE_LIMIT_PARTICIPANT_PER_MINUTE = 2
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    for _ in range(2):
        comm = communicator(ada)
        connected, _ = await comm.connect()
        assert connected
        await comm.disconnect()
    comm = communicator(ada)
    connected, code = await comm.connect()
    assert (connected, code) == (False, 4429)


# --- Admin login ----------------------------------------------------------------------------------


@pytest.fixture
def rhea(transactional_db):
    return get_user_model().objects.create_user(
        "rhea", password="correct horse battery", is_staff=True, is_superuser=True
    )


def log_in(password, username="rhea", address="127.0.0.1"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return response


def test_failed_admin_logins_are_throttled_per_username(rhea, clock):
    for attempt in range(5):
        response = log_in(f"guess {attempt}", address=f"198.51.100.{attempt}")
        assert "Please enter the correct username and password" in response.content.decode()

    response = log_in("correct horse battery", address="198.51.100.99")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Too many failed login attempts" in page
    assert "try again in 15 minutes" in page
    assert 'value="rhea"' in page  # the username is kept
    # Once the window has passed, the right password works again.
    clock["now"] += 15 * 60
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "rhea", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200  # and she stays logged in


def test_failed_admin_logins_are_throttled_per_address(rhea):
    for attempt in range(5):
        log_in("wrong", username=f"someone{attempt}")
    assert "Too many failed login attempts" in log_in("correct horse battery").content.decode()
    assert log_in("correct horse battery", address="192.0.2.1").status_code == 302


def test_a_successful_login_clears_the_usernames_failures(rhea, settings):
    settings.ADMIN_LOGIN_FAILURES = 2
    log_in("wrong", address="192.0.2.1")
    assert log_in("correct horse battery", address="192.0.2.2").status_code == 302
    log_in("wrong", address="192.0.2.3")
    assert log_in("correct horse battery", address="192.0.2.4").status_code == 302


def test_every_login_path_is_throttled_not_only_the_admins_page(rhea):
    for _ in range(5):
        log_in("wrong")
    request = RequestFactory().post("/anywhere/login/")
    assert authenticate(request, username="rhea", password="correct horse battery") is None
    elsewhere = RequestFactory().post("/anywhere/login/", REMOTE_ADDR="192.0.2.7")
    assert authenticate(elsewhere, username="rhea", password="correct horse battery") is None
    form = ThrottledLoginForm(
        request, data={"username": "rhea", "password": "correct horse battery"}
    )
    assert not form.is_valid()
    assert "Too many failed login attempts" in str(form.errors)


def test_the_research_login_page_says_plainly_that_logins_are_throttled(rhea):
    """Staff sign in at /research/login/: once throttled, the page says so and for how long,
    not "wrong password", and keeps the username."""
    for _ in range(5):
        log_in("wrong")
    response = Client().post(
        "/research/login/", {"username": "rhea", "password": "correct horse battery"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Too many failed login attempts" in page
    assert "try again in 15 minutes" in page
    assert 'value="rhea"' in page


def test_counters_count_each_key_and_window_apart_and_expire_with_their_window(clock):
    """A request counts against several keys at once (one round trip on Redis): each counter
    goes up by one, and it disappears when its window is over (nothing piles up in Redis)."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    ratelimit.reset("w:p:1")
    ratelimit.reset("join:a:10.0.0.1", window_seconds=ratelimit.HOUR)
    assert ratelimit.hits(("w:p:1", 60), ("join:a:10.0.0.1", 3600)) == [1, 1]
    assert ratelimit.hits(("w:p:1", 60), ("join:a:10.0.0.1", 3600)) == [2, 2]
    assert ratelimit.hit("w:p:1") == 3
    assert ratelimit.count("w:p:1") == 3
    assert ratelimit.count("join:a:10.0.0.1", window_seconds=ratelimit.HOUR) == 2
    clock["now"] += 60  # the next minute: a new window for the minute's counter only
    assert ratelimit.hits(("w:p:1", 60), ("join:a:10.0.0.1", 3600)) == [1, 3]
    backend = caches["default"]
    if isinstance(backend, RedisCache):  # each counter expires a little after its window

        def ttl(key: str, window: int) -> int:
            name = backend.make_and_validate_key(ratelimit._bucket(key, window))
            return backend._cache.get_client(name).ttl(name)

        assert 0 < ttl("w:p:1", 60) <= 65 and 60 < ttl("join:a:10.0.0.1", 3600) <= 3605

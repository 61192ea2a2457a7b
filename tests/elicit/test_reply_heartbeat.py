"""A reply whose server died mid-stream, as the participant's page meets it: after the page
reconnects (to another server), it shows the reply cut off with "Try again" by itself, within
seconds, without a reload. And a reply that a live server is still writing, however long the
model thinks, is never taken for a dead one.

The death of a real server is provoked in tests/deploy/test_faults.py; here the dead server is a
reply begun in the database that nobody writes any more."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from elicit import services
from elicit.demo import seed_demo
from elicit.models import Message
from tests.elicit.helpers import collect, communicator, join, send

WRITING = "The interviewer is writing…"


@pytest.fixture(autouse=True)
def _stale_after_two_seconds(settings):
    settings.STALE_REPLY_SECONDS = 2


def begun_elsewhere(ada, *, said: str, written: str) -> Message:
    """Ada's message, and the reply to it begun by a server that saved some text and died."""
    _, _, prepared = services.take_message(interview=ada.interview, text=said)
    services.beat_replies(progress={prepared.message.pk: written})
    return prepared.message


@pytest.mark.django_db(transaction=True)
async def test_a_page_reconnected_after_its_server_died_shows_the_reply_cut_off_by_itself(llm):
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    reply = await sync_to_async(begun_elsewhere)(
        ada, said="Her safety matters.", written="That sounds like it"
    )
    comm = communicator(ada)
    assert (await comm.connect())[0]
    try:
        # The catch-up: the reply was touched a moment ago, so it may still be written.
        catch_up = "".join(await collect(comm, lambda text: 'id="transcript"' in text))
        assert WRITING in catch_up and "Try again" not in catch_up
        assert "That sounds like it" in catch_up
        # Nobody touches it any more: the same page, without a reload, shows it cut off.
        frames = "".join(await collect(comm, lambda text: "Try again" in text, timeout=8))
    finally:
        await comm.disconnect()
    assert "The reply was interrupted" in frames
    assert "That sounds like it" in frames
    assert WRITING not in frames
    assert "Send</button>" in frames  # the composer is open again
    reply = await Message.objects.aget(pk=reply.pk)
    assert (reply.status, reply.content) == (Message.Status.PARTIAL, "That sounds like it")


@pytest.mark.django_db(transaction=True)
async def test_a_slow_model_is_not_taken_for_a_dead_server(llm):
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    llm.queue_text("Thank you. Tell me about a time this mattered.", delay=4.5)
    writer = communicator(ada)
    assert (await writer.connect())[0]
    try:
        await collect(writer, lambda text: 'id="transcript"' in text)
        await send(writer, "Her safety matters.")
        # While the model thinks (longer than STALE_REPLY_SECONDS), Ada reloads the page twice.
        for _ in range(2):
            await asyncio.sleep(1.8)
            reload = communicator(ada)
            assert (await reload.connect())[0]
            try:
                page = "".join(await collect(reload, lambda text: 'id="transcript"' in text))
            finally:
                await reload.disconnect()
            assert WRITING in page and "Try again" not in page
        frames = "".join(
            await collect(
                writer, lambda text: "Tell me about a time" in text and "Send</button>" in text
            )
        )
    finally:
        await writer.disconnect()
    assert "Try again" not in frames and "interrupted" not in frames
    reply = await Message.objects.filter(role="interviewer").order_by("seq").alast()
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "Thank you. Tell me about a time this mattered."


@pytest.mark.django_db(transaction=True)
async def test_a_page_watching_a_reply_a_live_server_finishes_shows_it_finished(llm):
    await sync_to_async(seed_demo)()
    ada = await sync_to_async(join)()
    llm.queue_text("Thank you. Tell me about a time this mattered.", delay=1.0)
    writer = communicator(ada)
    assert (await writer.connect())[0]
    other_tab = None
    try:
        await collect(writer, lambda text: 'id="transcript"' in text)
        await send(writer, "Her safety matters.")
        await asyncio.sleep(0.3)
        other_tab = communicator(ada)
        assert (await other_tab.connect())[0]
        page = "".join(await collect(other_tab, lambda text: 'id="transcript"' in text))
        assert WRITING in page
        frames = "".join(
            await collect(other_tab, lambda text: "Tell me about a time" in text, timeout=10)
        )
    finally:
        await writer.disconnect()
        if other_tab is not None:
            await other_tab.disconnect()
    assert "Try again" not in frames


@pytest.mark.django_db(transaction=True)
async def test_replies_streaming_at_once_are_saved_as_they_go_by_one_beat_a_second(
    llm, monkeypatch
):
    """Three participants' replies stream at once on one server: what each has received so far
    is in the database within a second or so (a crash loses at most that), and the server
    beats for all of them together, not once per reply."""
    beats: list[dict] = []
    beat_replies = services.beat_replies

    def counted(*, progress):
        beats.append(dict(progress))
        return beat_replies(progress=progress)

    monkeypatch.setattr(services, "beat_replies", counted)
    await sync_to_async(seed_demo)()
    people = [await sync_to_async(join)() for _ in range(3)]
    texts = [f"Reply number {n}, " + "and a few more words " * 6 + "to end." for n in range(3)]
    for text in texts:
        llm.queue_text(text, tokens_per_second=10)  # about four seconds each
    pages = [communicator(person) for person in people]
    try:
        for page in pages:
            assert (await page.connect())[0]
            await collect(page, lambda text: 'id="transcript"' in text)
            await send(page, "Her safety matters.")
        await asyncio.sleep(2.5)
        replies = [
            await Message.objects.filter(interview=person.interview, role="interviewer")
            .order_by("seq")
            .alast()
            for person in people
        ]
        for page in pages:
            await collect(page, lambda text: "to end." in text and "Send</button>" in text)
    finally:
        for page in pages:
            await page.disconnect()
    saved = sorted(reply.content for reply in replies)
    assert all(reply.status == Message.Status.STREAMING for reply in replies)
    for text, so_far in zip(sorted(texts), saved, strict=True):
        assert so_far and text.startswith(so_far) and so_far != text, (text, so_far)
    ids = {reply.pk for reply in replies}
    assert any(set(beat) == ids for beat in beats), beats
    assert len(beats) <= 8, f"{len(beats)} beats for three replies of about four seconds"

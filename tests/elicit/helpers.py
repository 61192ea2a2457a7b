"""Helpers that act as a participant's browser: join over HTTP, talk over the websocket."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from elicit.models import Interview, Participant

SCRIPTED_ANSWERS = [
    "Whether the person feels safe and heard.",
    "A friend of mine faced this at nineteen; she felt very alone.",
    "I paid attention to whether she felt judged. I noticed when she hesitated.",
    "MOMENTS when she feels judged\nSIGNS of fear in her voice\nOPPORTUNITIES to let her decide",
    "Support without judgment",
]


@dataclass
class Browser:
    client: Client
    participant: Participant
    interview: Interview

    def cookie_header(self) -> bytes:
        session = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        return f"{settings.SESSION_COOKIE_NAME}={session}".encode()

    def send_http(self, text: str, *, client_id: str | None = None):
        return self.client.post(
            f"/d/{self.participant.deliberation.slug}/interview/{self.interview.pk}/send/",
            {"message": text, "client_id": client_id or uuid.uuid4().hex, "action": "send"},
        )

    def confirm_scripted_card(self):
        """Answer the scripted interviewer with SCRIPTED_ANSWERS and confirm the card it
        proposes, as it stands. Returns the confirmation's response."""
        for answer in SCRIPTED_ANSWERS:
            self.send_http(answer)
        self.interview.refresh_from_db()
        draft = self.interview.draft_card
        return self.client.post(
            f"/d/{self.participant.deliberation.slug}/interview/{self.interview.pk}/card/",
            {**draft, "policies": "\n".join(draft["policies"])},
        )

    def page(self) -> str:
        response = self.client.get(f"/d/{self.participant.deliberation.slug}/interview/")
        assert response.status_code == 200, response.status_code
        return response.content.decode()


def join(slug: str = "demo", *, query: str = "", **fields) -> Browser:
    client = Client()
    response = client.post(f"/d/{slug}/join/{query}", {"consent": "on", **fields})
    assert response.status_code == 302, response.content.decode()[:2000]
    response = client.get(response["Location"])
    assert response.status_code == 200
    interview_id = int(re.search(r"/ws/interview/(\d+)/", response.content.decode()).group(1))
    interview = Interview.objects.select_related("participant__deliberation").get(pk=interview_id)
    return Browser(client=client, participant=interview.participant, interview=interview)


def communicator(browser: Browser, *, origin: bytes = b"http://localhost", interview_id=None):
    interview_id = interview_id or browser.interview.pk
    headers = [(b"origin", origin), (b"cookie", browser.cookie_header())]
    return WebsocketCommunicator(application, f"/ws/interview/{interview_id}/", headers=headers)


@contextlib.asynccontextmanager
async def live_interview(browser: Browser) -> AsyncIterator[WebsocketCommunicator]:
    """The participant's interview websocket, connected and caught up (the state frame
    received); disconnected at the end."""
    comm = communicator(browser)
    connected, _ = await comm.connect()
    assert connected
    try:
        await collect(comm, lambda text: 'id="transcript"' in text)
        yield comm
    finally:
        await comm.disconnect()


async def collect(comm: WebsocketCommunicator, until, timeout: float = 10.0) -> list[str]:
    """Frames received until `until(all_text)` is true."""
    frames: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out; received: {''.join(frames)[-3000:]}")
        frames.append(await comm.receive_from(timeout=remaining))
        if until("".join(frames)):
            return frames


def send(comm: WebsocketCommunicator, text: str, client_id: str | None = None):
    import json

    return comm.send_to(
        text_data=json.dumps(
            {"message": text, "client_id": client_id or uuid.uuid4().hex, "HEADERS": {}}
        )
    )

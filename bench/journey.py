"""Shared driving code for the multi-process runs (bench/interviews.py, bench/load.py,
deploy/scaleout.py and the fault tests): process helpers, a fake model that plays a whole
participant journey, a simulated participant that goes through the public HTTP and websocket
endpoints, and a cluster of real processes (ASGI servers, Celery workers) on loopback.

`python -m bench.journey --port 8001` serves the fake model with the journey's replies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"

# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, *, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def tree_peak_rss_mib(pid: int) -> float:
    """Peak memory of a process and its children (a Celery worker and its pool processes)."""
    total = peak_rss_mib(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += peak_rss_mib(int(child))
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class RequestLog:
    """Latency and failures of the participants' requests, by kind (a Visitor's `record`)."""

    timings: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, seconds: float, ok: bool) -> None:
        self.timings.setdefault(kind, []).append(seconds * 1000)
        self.failed[kind] = self.failed.get(kind, 0) + (not ok)

    def count(self) -> int:
        return sum(len(values) for values in self.timings.values())

    def summary(self) -> dict[str, dict]:
        return {
            kind: {
                "count": len(values),
                "failed": self.failed.get(kind, 0),
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
            }
            for kind, values in sorted(self.timings.items())
        }


# --- the fake model's side of the journey ---------------------------------------------------------

CARD_AFTER_TURNS = 3  # the interviewer proposes a card after this many participant messages
ARCHETYPE = re.compile(r"value #(\d+)")
VALUES = [
    ("Support without judgment", "Helping someone decide without making them feel judged."),
    ("Honest information first", "Giving accurate facts before any opinion, plainly."),
    ("Respect for growing autonomy", "Letting a young person make more of their own choices."),
    ("Faith as a living resource", "Treating someone's faith as a source of strength."),
    ("Calm in conflict", "Lowering the temperature so that people can think clearly."),
    ("Long view of consequences", "Weighing what a choice will mean in ten years."),
    ("Curiosity about motives", "Asking why someone wants to know before answering."),
    ("Safety before everything", "Making sure nobody is in danger before anything else."),
]


def card_for(archetype: int) -> dict:
    """The card the fake interviewer proposes to a participant who talked about `archetype`."""
    title, description = VALUES[archetype % len(VALUES)]
    word = title.split()[0].lower()
    return {
        "title": title,
        "description": description,
        "policies": [
            f"MOMENTS when {word} is at stake",
            f"SIGNS that the person needs {word}",
            f"OPPORTUNITIES to practise {word} together",
        ],
    }


def journey_responder(body: dict):
    """Replies of the fake model: text turns, then a card; upgrade stories; dedup verdicts."""
    from tests.fakellm import ToolCall, ToolCallReply

    tools = {tool["function"]["name"] for tool in body.get("tools") or []}
    messages = body.get("messages") or []
    if "submit_values_card" in tools:
        said = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        if len(said) >= CARD_AFTER_TURNS:
            found = ARCHETYPE.search(said[0])
            card = card_for(int(found.group(1)) if found else 0)
            return ToolCallReply(
                text_before="Here is what I heard.",
                calls=[ToolCall(name="submit_values_card", arguments=json.dumps(card))],
            )
        return None  # the default paced text reply
    if "write_upgrade_story" in tools:
        story = {
            "story": "She used to insist on one thing; she came to see what mattered more.",
            "policy_mapping": [
                {"from": "MOMENTS when it matters", "to": "MOMENTS of doubt", "relation": "refined"}
            ],
            "direction_ok": True,
        }
        return ToolCallReply(
            calls=[ToolCall(name="write_upgrade_story", arguments=json.dumps(story))]
        )
    if "same_value" in tools:
        verdict = {"same": False, "reason": "Different things are attended to."}
        return ToolCallReply(calls=[ToolCall(name="same_value", arguments=json.dumps(verdict))])
    return None


# --- a participant --------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
COMPOSER_ERROR = re.compile(r'id="composer-error"[^>]*>([^<]*)<')
STREAMING = re.compile(r'<article id="m-(\d+)" class="msg interviewer streaming">')
Recorder = Callable[[str, float, bool], None]


class JourneyError(RuntimeError):
    pass


@dataclass
class Visitor:
    """One simulated participant. Each request goes to the next server in turn, so one journey
    alternates between all of them (sessions and state live in the database and Redis)."""

    servers: list[str]
    index: int
    record: Recorder | None = None  # (kind of request, seconds, ok)
    turn_seconds: list[float] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    interview_id: int = 0
    card: dict = field(default_factory=dict)
    chose_value: str = ""
    voted: set[int] = field(default_factory=set)
    judged: dict[int, str] = field(default_factory=dict)
    catch_up: str = ""  # the last catch-up frame a (re)connection received
    _next: int = 0
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.index
        # Cookies belong to the host, not the port: one jar serves every server.
        self.http = httpx.AsyncClient(timeout=60, follow_redirects=False)

    @property
    def archetype(self) -> int:
        return self.index % len(VALUES)

    def server(self) -> str:
        base = self.servers[self._next % len(self.servers)]
        self._next += 1
        return base

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, kind: str, method: str, path: str, **kwargs) -> httpx.Response:
        started = time.perf_counter()
        ok = False
        try:
            response = await self.http.request(method, self.server() + path, **kwargs)
            ok = response.status_code < 500 and response.status_code not in {403, 404}
            if not ok:
                raise JourneyError(f"{method} {path} answered {response.status_code}")
            return response
        finally:
            if self.record is not None:
                self.record(kind, time.perf_counter() - started, ok)

    async def post_form(self, kind: str, path: str, page: str, data: dict) -> httpx.Response:
        token = CSRF.search(page)
        if token is None:
            raise JourneyError(f"no form to post on the page before {path}")
        return await self.request(
            kind, "POST", path, data={"csrfmiddlewaretoken": token.group(1), **data}
        )

    # --- the steps ---

    async def join(self, *, think: Callable[[], float] = lambda: 0.0) -> int:
        """Read the landing page (`think`: seconds spent reading it), consent, join."""
        landing = await self.request("landing", "GET", "/d/demo/")
        await asyncio.sleep(think())
        response = await self.post_form("join", "/d/demo/join/", landing.text, {"consent": "on"})
        if response.status_code != 302:
            raise JourneyError(f"join answered {response.status_code}")
        page = await self.request("interview page", "GET", "/d/demo/interview/")
        self.interview_id = int(re.search(r"/ws/interview/(\d+)/", page.text).group(1))
        return self.interview_id

    async def connect(self, base: str | None = None):
        """Open the interview's websocket (on the next server, or on `base`) and read the
        catch-up frame."""
        base = base or self.server()
        url = base.replace("http://", "ws://") + f"/ws/interview/{self.interview_id}/"
        cookies = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        ws = await websockets.connect(
            url,
            additional_headers={"Cookie": cookies, "Origin": base},
            max_size=2**22,
            open_timeout=60,
            ping_interval=None,
        )
        self.catch_up = await asyncio.wait_for(ws.recv(), 60)
        return ws

    async def say(self, ws, text: str) -> str:
        """Send one message and wait for the whole reply; returns the reply's frames."""
        client_id = uuid.uuid4().hex
        self.client_ids.append(client_id)
        started = time.perf_counter()
        await ws.send(json.dumps({"message": text, "client_id": client_id, "HEADERS": {}}))
        frames = []
        reply = ""  # the id of the reply's message, from its first frame
        while True:
            frame = await asyncio.wait_for(ws.recv(), 120)
            frames.append(frame)
            refused = COMPOSER_ERROR.search(frame)
            if refused and refused.group(1).strip():
                raise JourneyError(f"message refused: {refused.group(1).strip()}")
            streaming = STREAMING.search(frame)
            if streaming and not reply:
                reply = streaming.group(1)
            # The reply's final frame: its saved message, and the composer enabled again. (A
            # whole-page refresh, sent when this interview's other connection, on another
            # server, finished a reply, also holds a composer: it is not the end of this turn.)
            if (
                reply
                and "Send</button>" in frame
                and re.search(
                    f'id="m-{reply}" class="msg interviewer (complete|partial|failed)"', frame
                )
            ):
                break
        self.turn_seconds.append(time.perf_counter() - started)
        text = "".join(frames)
        if "broke off" in text or "not reachable" in text or "took too long" in text:
            raise JourneyError("the reply failed")
        return text

    async def interview(self, *, think: Callable[[], float] = lambda: 0.0) -> None:
        """The conversation until the card is proposed, reconnecting to the next server for
        every message."""
        for turn in range(CARD_AFTER_TURNS):
            await asyncio.sleep(think())
            ws = await self.connect()
            try:
                await self.say(
                    ws, f"What matters is value #{self.archetype}, turn {turn}, from {self.index}."
                )
            finally:
                await ws.close()

    async def confirm_card(self, *, think: Callable[[], float] = lambda: 0.0) -> str:
        """Read the card proposed (`think`: seconds spent on it) and confirm it."""
        path = f"/d/demo/interview/{self.interview_id}/card/"
        page = await self.request("interview page", "GET", "/d/demo/interview/")
        await asyncio.sleep(think())
        self.card = card_for(self.archetype)
        data = {**self.card, "policies": "\n".join(self.card["policies"])}
        response = await self.post_form("confirm card", path, page.text, data)
        if response.status_code != 302:
            raise JourneyError(f"confirming the card answered {response.status_code}")
        return response.headers["location"]

    async def match(self, *, think: Callable[[], float] = lambda: 0.0) -> None:
        """Read the values offered (`think`: seconds spent on them) and answer."""
        path = f"/d/demo/interview/{self.interview_id}/match/"
        page = await self.request("match", "GET", path)
        if page.status_code == 302:
            return
        await asyncio.sleep(think())
        for _attempt in range(3):
            offered = re.findall(r'name="value" value="(\d+)"', page.text)
            self.chose_value = offered[0] if offered and self.index % 3 == 0 else "distinct"
            response = await self.post_form("match", path, page.text, {"value": self.chose_value})
            if response.status_code == 302:
                return
            if response.status_code != 422:
                break
            page = response  # a value was merged meanwhile: choose among those shown now
        raise JourneyError(f"match answered {response.status_code}")

    async def vote(self, *, think: Callable[[], float] = lambda: 0.0) -> None:
        """Read the values offered (`think`: seconds spent on them) and vote."""
        page = await self.request("vote", "GET", "/d/demo/vote/")
        if page.status_code == 302:
            return
        await asyncio.sleep(think())
        for _attempt in range(3):
            offered = [int(v) for v in re.findall(r'name="value" value="(\d+)"', page.text)]
            chosen = set(offered[self.index % len(offered) :][:1] + offered[:1])
            response = await self.post_form(
                "vote", "/d/demo/vote/", page.text, {"value": [str(v) for v in sorted(chosen)]}
            )
            if response.status_code == 302:
                self.voted = chosen
                return
            if response.status_code != 422:
                break
            # A value was merged meanwhile (the pipeline runs beside the participants): the
            # page comes back with the values as they are now, and the participant chooses
            # again, as a person would.
            page = response
        raise JourneyError(f"vote answered {response.status_code}")

    async def judge(self, *, think: Callable[[], float] = lambda: 0.0) -> None:
        """Answer stories until the judge step sends the participant to the end."""
        while True:
            page = await self.request("judge", "GET", "/d/demo/judge/")
            if page.status_code == 302:
                return
            judgment = int(re.search(r'name="judgment" value="(\d+)"', page.text).group(1))
            verdicts = re.findall(r'name="verdict" value="(\w+)"', page.text)
            digest = hashlib.sha256(f"{self.index}:{judgment}".encode()).digest()
            verdict = verdicts[digest[0] % len(verdicts)]
            await asyncio.sleep(think())
            response = await self.post_form(
                "judge", "/d/demo/judge/", page.text, {"judgment": judgment, "verdict": verdict}
            )
            if response.status_code != 302:
                raise JourneyError(f"judging answered {response.status_code}")
            self.judged[judgment] = verdict

    async def done(self) -> None:
        await self.request("done", "GET", "/d/demo/done/")


# --- a cluster of real processes on loopback ------------------------------------------------------


def database_url_named(base: str, name: str) -> str:
    parsed = urlparse(base)
    return urlunparse(parsed._replace(path=f"/{name}"))


def create_database(url: str) -> None:
    import psycopg

    name = urlparse(url).path.lstrip("/")
    with psycopg.connect(database_url_named(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name = urlparse(url).path.lstrip("/")
    with psycopg.connect(database_url_named(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Cluster:
    env: dict[str, str]
    var_dir: Path
    fake_url: str = ""
    servers: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_web(self, names: list[str]) -> list[str]:
        """Start ASGI servers side by side; returns their base URLs once they answer."""
        started = [self.spawn_web(name) for name in names]
        for url, process in started:
            wait_http(f"{url}/healthz", process=process)
        return [url for url, _ in started]

    def spawn_web(self, name: str) -> tuple[str, subprocess.Popen]:
        port = free_port()
        process = subprocess.Popen(
            [
                str(ENTRYPOINT),
                "web",
                "--ws-per-message-deflate",
                "false",
                "--backlog",
                "4096",
                "--log-level",
                "warning",
            ],
            env={**self.env, "HOST": "127.0.0.1", "PORT": str(port)},
        )
        self.processes[name] = process
        return f"http://127.0.0.1:{port}", process

    def start_worker(self, name: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [str(ENTRYPOINT), "worker", "-n", f"{name}@%h", "--without-heartbeat"],
            env={**self.env, "CELERY_CONCURRENCY": "1"},
            stdout=subprocess.DEVNULL,
            stderr=(self.var_dir / f"{name}.log").open("ab"),
        )
        self.processes[name] = process
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        for child in children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)
        process.send_signal(sig)
        process.wait(timeout=30)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}


def cluster_env(*, database_url: str, redis_url: str, var_dir: Path, llm_url: str) -> dict:
    name = urlparse(database_url).path.lstrip("/")
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LLM_", "OPENAI_", "DJANGO_", "CELERY_"))
        },
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": name,  # tasks of this run only, even on a shared Redis
        "VAR_DIR": str(var_dir),
        "DEBUG": "false",
        "SECRET_KEY": "c" * 50,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BASE_URL": llm_url,
        "LLM_API_KEY": "journey",
        "LLM_MODEL": "fake-model",
        "LLM_TIMEOUT": "30",
        # Every simulated participant comes from 127.0.0.1: the per-address limits, meant for
        # people behind one NAT, would count them all as one.
        "MESSAGES_PER_MINUTE": "100000",
        "RATE_LIMIT_PARTICIPANT_PER_MINUTE": "100000",
        "RATE_LIMIT_ADDRESS_PER_MINUTE": "1000000",
        "RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR": "1000000",
        "MODERATION_BACKEND": "rules",
        "LOG_LEVEL": "warning",
        # Several processes share the server's connections with other users of it.
        "DATABASE_POOL_MIN": "1",
        "DATABASE_POOL_MAX": "12",
    }


@contextlib.contextmanager
def cluster(
    *,
    web: int = 2,
    workers: int = 2,
    database_name: str,
    tokens_per_second: float = 200.0,
    reply_tokens: int = 30,
    first_token_delay: float = 0.0,
    environ: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """A fresh PostgreSQL database (created, migrated, seeded with the demo; dropped at the
    end), the fake model, `web` ASGI servers and `workers` Celery workers, all on loopback,
    against DATABASE_URL's server and REDIS_URL."""
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not base.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    database_url = database_url_named(base, database_name)
    var_dir = Path(tempfile.mkdtemp(prefix="mge-cluster-"))
    fake_port = free_port()
    env = cluster_env(
        database_url=database_url,
        redis_url=redis_url,
        var_dir=var_dir,
        llm_url=f"http://127.0.0.1:{fake_port}/v1",
    )
    env.update(environ or {})
    result = Cluster(env=env, var_dir=var_dir, fake_url=f"http://127.0.0.1:{fake_port}/v1")
    create_database(database_url)
    try:
        # The fake model and the workers start while the database is being migrated.
        result.processes["fake_llm"] = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.journey",
                "--port",
                str(fake_port),
                "--tokens-per-second",
                str(tokens_per_second),
                "--reply-tokens",
                str(reply_tokens),
                "--first-token-delay",
                str(first_token_delay),
            ],
            cwd=ROOT,
            env=env,
        )
        for n in range(workers):
            result.start_worker(f"worker{n + 1}")
        subprocess.run(
            [str(ENTRYPOINT), "migrate"],
            env={**env, "SEED_DEMO": "true"},
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(
            [str(ENTRYPOINT), "python", "manage.py", "collectstatic", "--noinput", "-v0"],
            env=env,
            check=True,
        )
        wait_http(f"{result.fake_url}/models", process=result.processes["fake_llm"])
        result.servers = result.start_web([f"web{n + 1}" for n in range(web)])
        yield result
    finally:
        for process in result.processes.values():
            stop(process)
        shutil.rmtree(var_dir, ignore_errors=True)
        drop_database(database_url)


def main(argv: list[str] | None = None) -> None:
    """The fake model with the journey's replies, in the foreground."""
    from tests.fakellm import FakeLLM

    parser = argparse.ArgumentParser(prog="python -m bench.journey", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tokens-per-second", type=float, default=None)
    parser.add_argument("--reply-tokens", type=int, default=30)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeLLM(
        port=args.port,
        tokens_per_second=args.tokens_per_second,
        default_reply_tokens=args.reply_tokens,
        first_token_delay=args.first_token_delay,
    )
    server.responder = journey_responder
    server.serve_forever(log_level="warning")


if __name__ == "__main__":
    main()

"""Faults of the processes around the application, each provoked for real: an ASGI server
killed in the middle of a streamed reply, a Celery worker killed in the middle of a task, Redis
restarted, the database unreachable for a few seconds. Nothing is lost, nothing is doubled, the
errors are clear and the recovery needs nobody.

The faults of the language model (slow, failing, broken off, invalid tool calls) are in
tests/elicit/test_interview_llm.py and tests/graph/test_pipeline.py.

The tests that need PostgreSQL (several processes sharing one database) run in CI's services
pass; they use a database of their own and their own queue on Redis. The Redis and database
outages use a Redis server and a TCP proxy of their own, never the machine's shared ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bench.journey import (
    ENTRYPOINT,
    Visitor,
    children,
    cluster,
    free_port,
    stop,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = (os.environ.get("DATABASE_URL") or "").startswith("postgres")
services = pytest.mark.skipif(
    not (POSTGRES and os.environ.get("REDIS_URL")),
    reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL (CI services run)",
)


def sql(env: dict, query: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def manage(env: dict, code: str) -> str:
    result = subprocess.run(
        [str(ENTRYPOINT), "python", "manage.py", "shell", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- an ASGI server killed mid-stream -------------------------------------------------------------


@services
@pytest.mark.services
@pytest.mark.timeout(600)
def test_a_server_killed_mid_reply_loses_nothing_and_the_interview_goes_on_elsewhere():
    with cluster(
        web=2,
        workers=0,
        database_name=f"moralgraph_fault_{uuid.uuid4().hex[:8]}",
        tokens_per_second=10,  # a reply of 100 tokens streams for 10 s
        reply_tokens=100,
        environ={"STALE_REPLY_SECONDS": "5"},
    ) as c:
        first, second = c.servers
        visitor = Visitor([first], 0)

        async def journey() -> None:
            await visitor.join()
            ws = await visitor.connect(first)
            client_id = uuid.uuid4().hex
            await ws.send(
                json.dumps(
                    {"message": "What matters is value #0.", "client_id": client_id, "HEADERS": {}}
                )
            )
            # Tokens arrive for 4 s (the writer saves the reply every second, its heartbeat)...
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                await asyncio.wait_for(ws.recv(), 10)
            # ...and the server dies.
            c.kill("web1")
            with contextlib.suppress(Exception):
                await ws.close()
            visitor.client_ids.append(client_id)

            # The participant's page reconnects to the other server: their message is there
            # once, and the part of the reply that was saved.
            ws = await visitor.connect(second)
            assert visitor.catch_up.count("What matters is value #0.") == 1
            assert "That sounds like it matters to you" in visitor.catch_up
            # Once the dead server's heartbeat is STALE_REPLY_SECONDS old, the same page shows
            # the reply cut off, with a retry, by itself: no reload...
            seen, started = visitor.catch_up, time.monotonic()
            while "Try again" not in seen:
                seen += await asyncio.wait_for(ws.recv(), 20)
            assert time.monotonic() - started < 20
            assert "interrupted" in seen
            # ...and the retry writes the whole reply, and the conversation goes on to the card.
            await ws.send(json.dumps({"action": "retry", "HEADERS": {}}))
            frames = []
            while "Send</button>" not in (frame := await asyncio.wait_for(ws.recv(), 30)):
                frames.append(frame)
            visitor.servers = [second]
            await visitor.say(ws, "It is about value #0 again.")
            reply = await visitor.say(ws, "And once more, value #0.")
            assert "Here is what I heard." in reply
            await ws.close()
            await visitor.close()

        asyncio.run(journey())
        (interview_id,) = sql(c.env, "SELECT id FROM elicit_interview")[0]
        said = sql(
            c.env,
            "SELECT client_id FROM elicit_message WHERE interview_id = %s AND role = 'participant'"
            " ORDER BY seq",
            interview_id,
        )
        assert [row[0] for row in said] == visitor.client_ids  # each message once, in order
        replies = sql(
            c.env,
            "SELECT status, content FROM elicit_message WHERE interview_id = %s"
            " AND role = 'interviewer' ORDER BY seq",
            interview_id,
        )
        statuses = [status for status, _ in replies]
        # The opening, the reply cut off (kept, marked partial), its retry, two more replies.
        assert statuses == ["complete", "partial", "complete", "complete", "complete"]
        assert replies[1][1]  # what was saved before the server died is kept
        status = sql(c.env, "SELECT status FROM elicit_interview WHERE id = %s", interview_id)
        assert status[0][0] == "card_proposed"


# --- a Celery worker killed mid-task --------------------------------------------------------------


def queued_hypotheses_job(env: dict) -> int:
    return int(
        manage(
            env,
            "from django.db import transaction; from graph import pipeline; "
            "from elicit.models import Deliberation; "
            "d = Deliberation.objects.get(slug='demo'); "
            "job = pipeline.queue_job(deliberation_id=d.pk, kind='hypotheses'); "
            "print(job.pk)",
        )
    )


@services
@pytest.mark.services
@pytest.mark.timeout(600)
def test_a_worker_killed_mid_task_runs_it_again_and_creates_nothing_twice():
    with cluster(
        web=1,
        workers=1,
        database_name=f"moralgraph_fault_{uuid.uuid4().hex[:8]}",
        first_token_delay=0.3,  # each story takes the model a moment: the task lasts seconds
    ) as c:
        # Eight participants, eight different values.
        visitors = [Visitor(c.servers, i) for i in range(8)]

        async def interviews() -> None:
            for visitor in visitors:
                await visitor.join()
                await visitor.interview()
                await visitor.confirm_card()
                await visitor.match()
                await visitor.close()

        asyncio.run(interviews())
        manage(
            c.env,
            "from graph import pipeline; from elicit.models import Deliberation; "
            "pipeline.deduplicate_pending(deliberation_id=Deliberation.objects.get().pk)",
        )
        # The pipeline the new cards queued by themselves finishes first: the task killed
        # below is then ours.
        wait_until(
            lambda: (
                not sql(
                    c.env,
                    "SELECT 1 FROM graph_pipelinejob WHERE status IN ('queued', 'running')",
                )
            ),
            180,
            "the pipeline queued by the cards",
        )
        before = sql(c.env, "SELECT count(*) FROM graph_upgradehypothesis")[0][0]
        job = queued_hypotheses_job(c.env)

        def written() -> int:
            return sql(c.env, "SELECT count(*) FROM graph_upgradehypothesis")[0][0] - before

        # The worker's pool process dies (SIGKILL) while it writes the stories.
        wait_until(lambda: written() >= 2, 120, "the first stories")
        worker = c.processes["worker1"]
        (pool_process,) = children(worker.pid)
        os.kill(pool_process, signal.SIGKILL)
        at_kill = written()
        # The task is delivered again (acks_late, reject_on_worker_lost) and finishes the job.
        status = wait_until(
            lambda: (
                sql(c.env, "SELECT status FROM graph_pipelinejob WHERE id = %s", job)[0][0]
                in {"done", "failed"}
                and sql(c.env, "SELECT status FROM graph_pipelinejob WHERE id = %s", job)[0][0]
            ),
            180,
            "the job to end",
        )
        assert status == "done"
        total = written()
        assert total > at_kill  # it went on after the kill
        # Nothing twice: one hypothesis per edge, and a run of the step now finds nothing left.
        duplicates = sql(
            c.env,
            "SELECT context_id, from_value_id, to_value_id, count(*) FROM graph_upgradehypothesis"
            " GROUP BY 1, 2, 3 HAVING count(*) > 1",
        )
        assert duplicates == []
        again = queued_hypotheses_job(c.env)
        wait_until(
            lambda: (
                sql(c.env, "SELECT status FROM graph_pipelinejob WHERE id = %s", again)[0][0]
                == "done"
            ),
            120,
            "the second run",
        )
        assert written() == total


# --- Redis restarted ------------------------------------------------------------------------------


class RedisServer:
    """A Redis server of our own on a free port (restarting the machine's would disturb others)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, "redis to start")

    def answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture
def web_on_sqlite(tmp_path):
    """A migrated SQLite database in tmp_path and the environment of a production web process
    on it (scripted interviewer, no model)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "OPENAI_", "DJANGO_", "CELERY_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        VAR_DIR=str(tmp_path),
        DEBUG="false",
        SECRET_KEY="f" * 50,
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        HOST="127.0.0.1",
        LOG_LEVEL="error",
    )
    prepare(env)
    return env


def prepare(env: dict) -> None:
    """Migrate, seed the demo and collect the static files, as a release would."""
    for step in (["migrate"], ["python", "manage.py", "collectstatic", "--noinput", "-v0"]):
        result = subprocess.run(
            [str(ENTRYPOINT), *step],
            env={**env, "SEED_DEMO": "true"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@contextlib.contextmanager
def web_server(env: dict):
    port = free_port()
    process = subprocess.Popen(
        [str(ENTRYPOINT), "web", "--log-level", "critical"],
        env={**env, "PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/", process=process)
        yield url
    finally:
        stop(process)


def health(url: str) -> tuple[int, dict]:
    response = httpx.get(f"{url}/healthz", timeout=20)
    return response.status_code, response.json()


@pytest.mark.services
@pytest.mark.skipif(
    not (shutil.which("redis-server") and os.environ.get("REDIS_URL")),
    reason="needs redis-server; runs once, in the services pass (REDIS_URL set)",
)
@pytest.mark.timeout(300)
def test_a_redis_restart_is_reported_and_recovered_from_without_a_restart(web_on_sqlite, tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        with web_server({**web_on_sqlite, "REDIS_URL": redis.url}) as url:
            assert health(url)[0] == 200
            visitor = Visitor([url], 0)

            async def talk(text: str) -> str:
                ws = await visitor.connect()
                try:
                    return await visitor.say(ws, text)
                finally:
                    await ws.close()

            async def before() -> str:
                await visitor.join()
                return await talk("Whether the person feels safe and heard.")

            assert "Send</button>" in asyncio.run(before())

            redis.stop()
            status, body = health(url)
            assert status == 503
            assert body["checks"]["broker"]["ok"] is False
            assert body["checks"]["channel_layer"]["ok"] is False
            assert body["checks"]["database"]["ok"] is True
            # The pages that do not need Redis still work meanwhile.
            assert httpx.get(f"{url}/d/demo/", timeout=20).status_code == 200

            redis.start()  # same port, empty: everything in it was lost
            wait_until(lambda: health(url)[0] == 200, 30, "/healthz to recover")
            # The interview goes on over a new websocket, through the new Redis.
            reply = asyncio.run(talk("A friend of mine faced this; she felt very alone."))
            assert "Send</button>" in reply
            assert len(visitor.client_ids) == 2
    finally:
        redis.stop()


# --- the database unreachable for a few seconds ---------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL that can cut every connection and refuse new
    ones (the database "unreachable"), then let them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()  # refused at once, as when the server is down
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@services
@pytest.mark.services
@pytest.mark.timeout(300)
def test_an_unreachable_database_gives_clear_503s_and_recovers_by_itself(tmp_path):
    from urllib.parse import urlparse

    from bench.journey import cluster_env, create_database, database_url_named, drop_database

    base = os.environ["DATABASE_URL"]
    name = f"moralgraph_fault_{uuid.uuid4().hex[:8]}"
    direct = database_url_named(base, name)
    parsed = urlparse(direct)
    proxy = TcpProxy((parsed.hostname or "127.0.0.1", parsed.port or 5432))
    through_proxy = direct.replace(f":{parsed.port or 5432}/", f":{proxy.port}/", 1)
    env = cluster_env(
        database_url=through_proxy,
        redis_url=os.environ["REDIS_URL"],
        var_dir=tmp_path,
        llm_url="http://127.0.0.1:9/v1",
    )
    env.update(DATABASE_POOL_TIMEOUT="2", CELERY_QUEUE=name, LOG_LEVEL="error")
    create_database(direct)
    try:
        prepare(env)
        with web_server(env) as url:
            assert httpx.get(f"{url}/d/demo/", timeout=20).status_code == 200
            proxy.cut()
            page = httpx.get(f"{url}/d/demo/", timeout=20)
            assert page.status_code == 503
            assert page.headers["Retry-After"] == "5"
            assert "try again in a few seconds" in page.text
            status, body = health(url)
            assert status == 503
            assert body["checks"]["database"]["ok"] is False
            assert body["checks"]["database"]["error"]
            time.sleep(3)  # a few seconds of outage
            proxy.restore()
            wait_until(lambda: health(url)[0] == 200, 30, "/healthz to recover")
            assert httpx.get(f"{url}/d/demo/", timeout=20).status_code == 200
    finally:
        proxy.close()
        drop_database(direct)

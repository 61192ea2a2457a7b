"""A real Celery worker, started as its own process, consumes what the application sends: on the
embedded filesystem broker always, and on Redis when REDIS_URL is set (the CI's services run)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))


def round_trip(*, broker: str, backend: str, transport_options: dict, env: dict) -> str:
    queue = f"test-{uuid.uuid4().hex[:8]}"  # a queue of our own: no other worker takes it
    worker = subprocess.Popen(
        [
            CELERY,
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = Celery("probe", broker=broker, backend=backend)
        client.conf.broker_transport_options = transport_options
        result = client.send_task("elicit.ping", queue=queue)
        return result.get(timeout=60)
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        print(output)  # shown by pytest when the test fails


def test_a_real_worker_consumes_the_filesystem_broker(tmp_path):
    queue_dir = tmp_path / "broker" / "queue"
    queue_dir.mkdir(parents=True)
    (tmp_path / "broker" / "control").mkdir()
    (tmp_path / "results").mkdir()
    backend = f"file://{tmp_path / 'results'}"
    answer = round_trip(
        broker="filesystem://",
        backend=backend,
        transport_options={
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(tmp_path / "broker" / "control"),
        },
        env={
            "VAR_DIR": str(tmp_path),
            "CELERY_RESULT_BACKEND": backend,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
        },
    )
    assert answer == "pong"


@pytest.mark.services
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI services run)")
def test_a_real_worker_consumes_the_redis_broker():
    redis_url = os.environ["REDIS_URL"]
    answer = round_trip(
        broker=redis_url, backend=redis_url, transport_options={}, env={"REDIS_URL": redis_url}
    )
    assert answer == "pong"


@pytest.mark.services
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI services run)")
def test_a_web_process_sending_checks_is_not_left_subscribed_to_their_results():
    """Nothing reads a moderation check's result: sending one must not subscribe the sender to
    the result's channel on Redis (a command more on the message path, and a subscription per
    message that nobody drops, to which the worker then pushes every result)."""
    import redis

    import elicit.tasks
    from config.celery import app, enqueue

    # The application's own task: the name imported resolves in whichever app is current, and
    # an earlier test made a probe app current.
    moderate_text = app.tasks[elicit.tasks.moderate_text.name]
    if not str(app.conf.result_backend or "").startswith("redis"):
        pytest.skip("the result backend is not Redis in this run")
    queue = f"test-{uuid.uuid4().hex[:8]}"  # no worker takes it; removed below
    server = redis.Redis.from_url(app.conf.broker_url)
    app.conf.task_always_eager = False
    try:
        sent = [
            enqueue(moderate_text, "check", "elicit", "message", n, queue=queue) for n in [1, 2]
        ]
        channels = [f"celery-task-meta-{result.id}" for result in sent]
        assert dict(server.pubsub_numsub(*channels)) == {c.encode(): 0 for c in channels}
    finally:
        app.conf.task_always_eager = True
        server.delete(queue)

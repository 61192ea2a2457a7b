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

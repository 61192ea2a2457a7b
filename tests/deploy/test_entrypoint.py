"""deploy/entrypoint.sh run directly, as the container runs it, with the virtual environment's
bin folder on PATH and a SQLite database in a temporary folder."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.journey import children

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def environ(tmp_path) -> dict:
    """Production settings on the embedded services (SQLite, filesystem broker) in tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        VAR_DIR=str(tmp_path),
        DEBUG="false",
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        LOG_LEVEL="warning",
    )
    return env


def run(environ: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(400)
def test_migrate_creates_the_schema_and_passes_the_deployment_checks(environ, tmp_path):
    result = run(environ, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "db.sqlite3").is_file()
    tables = run(
        environ,
        "python",
        "manage.py",
        "shell",
        "-c",
        "from elicit.models import Deliberation; print(Deliberation.objects.count())",
    )
    assert tables.returncode == 0, tables.stderr
    assert tables.stdout.strip().splitlines()[-1] == "0"
    # Running it again (the next release with no new migration) changes nothing and succeeds.
    assert run(environ, "migrate").returncode == 0


def test_migrate_seeds_the_demo_only_when_asked(environ):
    result = run({**environ, "SEED_DEMO": "true"}, "migrate")
    assert result.returncode == 0, result.stderr
    assert "/d/demo/" in result.stdout


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the web process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.mark.timeout(400)
def test_web_serves_healthz_and_its_health_check_passes(environ):
    assert run(environ, "migrate").returncode == 0
    web = subprocess.Popen(
        [str(ENTRYPOINT), "web"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{environ['PORT']}/healthz"
        # With DEBUG off, http is redirected to https, except /healthz (for load balancers).
        assert wait_for_health(url, web) == 200
        check = run(environ, "health", "web")
        assert check.returncode == 0, check.stderr
    finally:
        web.terminate()
        output, _ = web.communicate(timeout=30)
    # exec: uvicorn itself received the signal and shut down gracefully (it then re-raises
    # the signal, so the exit status is -SIGTERM).
    assert "Finished server process" in output, output


def test_the_web_health_check_fails_when_nothing_answers(environ):
    result = run(environ, "health", "web")
    assert result.returncode != 0
    assert "unhealthy" in result.stderr


def test_the_beat_health_check_fails_without_a_reachable_broker(environ):
    result = run({**environ, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}, "health", "beat")
    assert result.returncode != 0
    assert "unhealthy" in result.stderr


def test_an_unknown_health_mode_is_refused(environ):
    result = run(environ, "health", "database")
    assert result.returncode == 2
    assert "unknown mode" in result.stderr


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("setting", "lower_by"), [(None, 10), ("0", 0), ("4", 4)])
def test_the_worker_runs_below_the_web_servers_cpu_priority(environ, setting, lower_by):
    """On a host it shares with the web servers, the worker's pool yields the CPU to the
    requests participants wait for: WORKER_NICE (default 10) lowers its priority."""
    if setting is not None:
        environ["WORKER_NICE"] = setting
    worker = subprocess.Popen(
        [str(ENTRYPOINT), "worker", "--without-heartbeat"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(children(worker.pid)) < 2 and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker stopped"
            time.sleep(0.2)
        pool = children(worker.pid)
        assert len(pool) >= 2, "the worker's pool did not start"
        expected = os.nice(0) + lower_by
        assert [niceness(pid) for pid in [worker.pid, *pool]] == [expected] * (1 + len(pool))
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.parametrize("setting", ["-5", "20", "ten"])
def test_a_worker_nice_out_of_range_is_refused_with_its_name(environ, setting):
    result = run({**environ, "WORKER_NICE": setting}, "worker")
    assert result.returncode == 2
    assert "WORKER_NICE" in result.stderr

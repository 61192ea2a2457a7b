"""GET /healthz reports the database, the broker and the channel layer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_it_is_healthy_when_everything_is_usable(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "channel_layer"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_it_rejects_post(client):
    assert client.post("/healthz").status_code == 405


def healthz_in_subprocess(**environ: str) -> tuple[int, dict]:
    """Ask /healthz in a fresh process whose settings point at broken services."""
    env = dict(os.environ, **environ)
    code = (
        "import os, json, django; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        "django.setup(); from django.test import Client; "
        "r = Client(HTTP_HOST='localhost').get('/healthz'); "
        "print(r.status_code); print(r.content.decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().split("\n", 1)
    return int(status), json.loads(body)


def test_an_unreachable_database_gives_503_with_a_message():
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    status, body = healthz_in_subprocess(DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]


def test_an_unreachable_broker_gives_503_with_a_message():
    status, body = healthz_in_subprocess(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]

"""The optional read replica: the research area's reads go to it, everything else (and every
write) to the primary. Shown with two SQLite files standing in for a primary and its replica."""

import os
import subprocess
import sys
from pathlib import Path

from django.test import RequestFactory

from config.routers import ReplicaRouter, ResearchReplicaMiddleware, replica_reads
from elicit.models import Deliberation

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter whose settings name two databases: the primary is migrated and
# seeded, copied as the "replica", then changed on the primary only.
SCRIPT = """
import os, shutil, django
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from django.core.management import call_command
from django.test import Client
from config.routers import replica_reads
from elicit.demo import seed_demo
from elicit.models import Deliberation

call_command("migrate", verbosity=0)
seed_demo()
from django.db import connections
connections.close_all()
shutil.copy(os.environ["PRIMARY"], os.environ["REPLICA"])
Deliberation.objects.filter(slug="demo").update(title="Changed on the primary only")

print("outside:", Deliberation.objects.get(slug="demo").title)
with replica_reads():
    print("inside:", Deliberation.objects.get(slug="demo").title)
from django.conf import settings
from django.test import RequestFactory
from config.routers import ResearchReplicaMiddleware
print("installed:", "config.routers.ResearchReplicaMiddleware" in settings.MIDDLEWARE)
read = ResearchReplicaMiddleware(lambda request: Deliberation.objects.get(slug="demo").title)
print("research:", read(RequestFactory().get("/research/demo/")))
print("participant:", read(RequestFactory().get("/d/demo/")))
page = Client(HTTP_HOST="localhost").get("/d/demo/")
print("page:", page.status_code, "Changed on the primary only" in page.content.decode())
"""


def test_research_reads_go_to_the_replica_and_everything_else_to_the_primary(tmp_path):
    primary, replica = tmp_path / "primary.sqlite3", tmp_path / "replica.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    env.update(
        VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{primary}",
        DATABASE_REPLICA_URL=f"sqlite:///{replica}",
        PRIMARY=str(primary),
        REPLICA=str(replica),
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    original = next(line for line in lines if line.startswith("inside: ")).split(": ", 1)[1]
    assert original != "Changed on the primary only"
    assert "outside: Changed on the primary only" in lines
    assert "installed: True" in lines
    assert f"research: {original}" in lines  # a research page reads the replica
    assert "participant: Changed on the primary only" in lines  # other pages, the primary
    assert "page: 200 True" in lines


def test_without_a_replica_every_read_goes_to_the_primary():
    with replica_reads():
        assert ReplicaRouter().db_for_read(Deliberation) is None
    assert ReplicaRouter().db_for_write(Deliberation) is None


def test_only_the_research_areas_reads_are_marked_for_the_replica(monkeypatch):
    monkeypatch.setattr("config.routers.replica_configured", lambda: True)
    seen = {}

    def view(request):
        seen[request.method, request.path] = ReplicaRouter().db_for_read(Deliberation)

    middleware = ResearchReplicaMiddleware(view)
    factory = RequestFactory()
    middleware(factory.get("/research/demo/"))
    middleware(factory.post("/research/demo/pilot/"))
    middleware(factory.get("/d/demo/"))
    assert seen == {
        ("GET", "/research/demo/"): "replica",
        ("POST", "/research/demo/pilot/"): None,
        ("GET", "/d/demo/"): None,
    }
    assert ReplicaRouter().allow_migrate("replica", "elicit") is False
    assert ReplicaRouter().allow_migrate("default", "elicit") is True

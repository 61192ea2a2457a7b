"""deploy/scaleout.py: two ASGI servers and two Celery workers on the real PostgreSQL and Redis,
200 participants alternating between the servers, and everything recorded exactly once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.services
@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
    reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL (CI services run)",
)
@pytest.mark.timeout(1200)
def test_two_servers_and_two_workers_record_every_step_of_200_participants_exactly_once():
    result = subprocess.run(
        [sys.executable, "deploy/scaleout.py", "--participants", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1150,
        check=False,
    )
    output = result.stdout.strip().splitlines()
    assert output, result.stderr[-5000:]
    summary = json.loads(output[-1])
    assert result.returncode == 0, "\n".join(output[-40:]) + result.stderr[-3000:]
    assert summary["problems"] == 0
    assert summary["participants"] == 200
    assert summary["messages"] == 600  # three per participant
    assert summary["cards"] == 200
    assert summary["votes"] > 0 and summary["judgments"] > 0 and summary["hypotheses"] > 0
    assert summary["scoring_equal_to_single_process"] is True

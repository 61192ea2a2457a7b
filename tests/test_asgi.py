"""The ASGI entry point, as a server process loads it."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_what_the_server_loads_at_start_is_hidden_from_the_garbage_collector(tmp_path):
    # A full collection walks every tracked object and stops the event loop meanwhile: the
    # objects loaded at start (Django, the apps, the SDK, the interview page) are frozen.
    script = (
        "import gc, json, config.asgi, openai.resources.chat.completions;"
        "print(json.dumps([gc.get_freeze_count(), len(gc.get_objects())]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    frozen, tracked = json.loads(output.strip().splitlines()[-1])
    assert frozen > 50_000
    assert tracked < frozen / 20

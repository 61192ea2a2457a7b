"""CI keeps only its log, so a failed test pass prints the browser tests' screenshots and HTML
into it (.ci/print-artifacts, called from .ci/run), in blocks that give the files back."""

from __future__ import annotations

import base64
import gzip
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRINTER = ROOT / ".ci" / "print-artifacts"


def tiny_png() -> bytes:
    """A valid 2x2 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def print_artifacts(folder: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(PRINTER), str(folder), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def blocks(log: str) -> dict[str, bytes]:
    """The files of the log's artifact blocks, decoded as the header says."""
    found = {}
    for match in re.finditer(
        r"^=== artifact: (\S+) \((\d+) bytes; base64 of gzip; recover with: .*\)\n"
        r"(.*?)^=== end of artifact: \1$",
        log,
        re.MULTILINE | re.DOTALL,
    ):
        data = gzip.decompress(base64.b64decode(match[3]))
        assert len(data) == int(match[2])
        found[match[1]] = data
    return found


def test_a_printed_screenshot_decodes_to_the_same_bytes(tmp_path):
    png = tiny_png()
    html = "<!doctype html><title>Exports</title><p>Run 3, finished…</p>".encode()
    (tmp_path / "artifacts" / "browser").mkdir(parents=True)
    (tmp_path / "artifacts" / "browser" / "test_it_fails.png").write_bytes(png)
    (tmp_path / "artifacts" / "browser" / "test_it_fails.html").write_bytes(html)

    log = print_artifacts(tmp_path / "artifacts")

    assert blocks(log) == {"browser/test_it_fails.html": html, "browser/test_it_fails.png": png}
    body = [line for line in log.splitlines() if not line.startswith("=")]
    assert body and all(len(line) <= 76 for line in body)


def test_the_command_in_the_header_recovers_the_file_from_the_saved_log(tmp_path):
    png = tiny_png()
    (tmp_path / "artifacts" / "browser").mkdir(parents=True)
    (tmp_path / "artifacts" / "browser" / "test_a.png").write_bytes(b"another file first")
    (tmp_path / "artifacts" / "browser" / "test_b.png").write_bytes(png)
    log = "== tests\nFAILED tests/browser/test_x.py\n" + print_artifacts(tmp_path / "artifacts")
    out = tmp_path / "recovered"
    out.mkdir()
    (out / "ci.log").write_text(log + "== after the artifacts\n")

    header = next(line for line in log.splitlines() if "artifact: browser/test_b.png" in line)
    command = re.search(r"recover with: (.*)\)$", header)[1]
    subprocess.run(["bash", "-c", command], cwd=out, check=True, timeout=30)

    assert (out / "test_b.png").read_bytes() == png


def test_with_no_artifacts_it_says_so(tmp_path):
    assert print_artifacts(tmp_path / "artifacts") == f"== no artifacts in {tmp_path}/artifacts/\n"


def test_files_over_the_limit_are_named_but_not_printed(tmp_path):
    (tmp_path / "a.html").write_bytes(b"x" * 100)
    (tmp_path / "b.png").write_bytes(b"y" * 100)

    log = print_artifacts(tmp_path, "--limit", "150")

    assert blocks(log) == {"a.html": b"x" * 100}
    assert "=== artifact: b.png (100 bytes) not printed: over 150 bytes" in log


def ci_test_pass() -> str:
    """The shell function of .ci/run that runs one test pass."""
    script = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^test_pass\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert match, "test_pass() is missing from .ci/run"
    return match[0]


def run_ci_pass(tmp_path: Path, make_script: str) -> subprocess.CompletedProcess:
    """Run .ci/run's test pass in a copy of the repository's layout, with a fake `make`."""
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "print-artifacts").write_bytes(PRINTER.read_bytes())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text("#!/usr/bin/env bash\n" + make_script)
    (bin_dir / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{ci_test_pass()}test_pass\necho after the pass\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_failed_ci_pass_prints_its_new_artifacts_and_keeps_the_exit_code(tmp_path):
    stale = tmp_path / "artifacts" / "browser" / "test_from_the_pass_before.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    png = tiny_png()
    fake_make = (
        "mkdir -p artifacts/browser\n"
        f"printf '%s' '{base64.b64encode(png).decode()}' | base64 -d"
        " > artifacts/browser/test_it_fails.png\n"
        "echo '1 failed, 10 passed'\n"
        "exit 2\n"
    )

    result = run_ci_pass(tmp_path, fake_make)

    assert result.returncode == 2
    assert "after the pass" not in result.stdout
    assert blocks(result.stdout) == {"browser/test_it_fails.png": png}


def test_a_ci_pass_that_succeeds_prints_nothing_more(tmp_path):
    result = run_ci_pass(tmp_path, "echo '11 passed'\n")

    assert result.returncode == 0
    assert result.stdout == "11 passed\nafter the pass\n"

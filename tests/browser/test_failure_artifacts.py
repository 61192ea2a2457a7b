"""A browser test that fails leaves a screenshot and the HTML of its page behind, for CI to print
into its log (.ci/print-artifacts). Proven on a test that fails on purpose, run by pytest in a
subprocess with the project's fixtures and its own artifacts folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAILING_TEST = """
from playwright.sync_api import expect


def test_it_fails_on_the_sign_in_page(browser_page):
    browser_page.goto("/research/login/")
    expect(browser_page.get_by_label("Username")).to_be_visible()
    assert False, "failing on purpose"
"""


def test_a_failing_browser_test_leaves_a_screenshot_and_the_page_html(
    chromium_executable, tmp_path
):
    (tmp_path / "test_on_purpose.py").write_text(FAILING_TEST)
    artifacts = tmp_path / "artifacts"
    env = {
        key: value
        for key, value in os.environ.items()
        # The embedded defaults: a test database of its own, in memory, beside this run's.
        if key not in ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL")
    }
    env.update(DJANGO_SETTINGS_MODULE="config.settings", BROWSER_ARTIFACTS=str(artifacts))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            # The project's fixtures, for a test file outside the project's folders.
            "-p",
            "tests.conftest",
            "-p",
            "tests.browser.conftest",
            str(tmp_path / "test_on_purpose.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "failing on purpose" in result.stdout
    screenshot = artifacts / "test_it_fails_on_the_sign_in_page.png"
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    html = (artifacts / "test_it_fails_on_the_sign_in_page.html").read_text()
    assert 'name="username"' in html
    assert f"browser screenshot: {screenshot}" in result.stdout

"""Browser tests: the real ASGI application served by uvicorn, driven by headless Chromium.

The server runs in a background thread of the test process, on its own event loop, against the
test database (pytest-django's `transactional_db`, so what the test writes is committed and the
server's threads see it: the in-memory SQLite test database uses a shared cache, PostgreSQL
shows committed rows to every connection).

Playwright's sync API runs here, in plain `def` tests: it refuses to start inside a running event
loop, so these tests must never be `async def` (pytest-asyncio only wraps coroutines).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from django.conf import settings
from django.db import connections

# Imported at collection time on purpose, while settings.DEBUG is still True (pytest-django turns
# it off just before the tests run): the middleware reads DEBUG once, when the application is
# built, so ServeStatic serves /static/ from the finders as it does under `make run`.
from config.asgi import application

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where a failed test's screenshots and HTML go (CI prints them into its log: .ci/run). The
# variable lets a test that provokes a failure keep its files apart.
ARTIFACTS = Path(
    os.environ.get("BROWSER_ARTIFACTS") or Path(settings.BASE_DIR) / "artifacts" / "browser"
)
HERE = Path(__file__).resolve().parent
T = TypeVar("T")

# Runs in every page before its own scripts: the page reports each Content-Security-Policy
# violation as a console error, so that none goes unnoticed even if Chromium stops logging them.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    "CSP violation: " + event.violatedDirective + " blocked " +
    (event.blockedURI || "inline code") + " at " + event.sourceFile + ":" + event.lineNumber
  );
});
"""


# --- marking and reporting ------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder drives a browser."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, for the fixtures' teardown to read."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A test that passed still fails when its pages logged JS errors or CSP violations.

    Checked here, right after the test body, rather than in a fixture's teardown, so that it
    counts as the test's failure (and what the page did while closing does not count)."""
    result = yield
    session: BrowserSession | None = getattr(item, "browser_session", None)
    if session is not None:
        errors = session.console_errors()
        if errors:
            raise AssertionError(
                "the browser reported errors:\n" + "\n".join(f"  {e}" for e in errors)
            )
    return result


# --- the live server ------------------------------------------------------------------------------


class LiveServer:
    """uvicorn serving the ASGI application from a thread with its own event loop."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))  # bound before serving: a free port, and no race for it
        self.host, self.port = self.sock.getsockname()
        config = uvicorn.Config(
            application,
            lifespan="off",
            log_config=None,  # leave the process's logging (Django's LOGGING) alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"live-server-{self.port}")
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            # server.run() makes a fresh event loop for this thread (no signal handlers off
            # the main thread).
            self.server.run(sockets=[self.sock])
        except BaseException as error:  # reported by start() or stop()
            self.error = error

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the live server did not start: {self.error!r}")
            time.sleep(0.01)
        with socket.create_connection((self.host, self.port), timeout=5):
            pass  # accepts connections

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # pragma: no cover - only if a connection hangs
            self.server.force_exit = True
            self.thread.join(timeout=5)
        self.sock.close()
        assert not self.thread.is_alive(), "the live server did not stop"


@pytest.fixture
def live_server_url(transactional_db) -> Iterator[str]:
    """The application at http://127.0.0.1:<free port>, sharing the test database.

    127.0.0.1 is in ALLOWED_HOSTS, which both the HTTP host check and the websocket origin
    check (built from ALLOWED_HOSTS at import) accept."""
    server = LiveServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# --- the browser ----------------------------------------------------------------------------------


@dataclass
class BrowserSession:
    """The pages a test opened, and what their consoles said."""

    pages: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_errors(self, pattern: str) -> None:
        """Console errors matching *pattern* (a regex searched in "console error from <url>:
        <text>") are what the test provokes on purpose, e.g. opening a page that must 404."""
        self.expected.append(re.compile(pattern))

    def watch(self, page) -> None:
        self.pages.append(page)
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"JS error: {error}"))

    def _console(self, page, message) -> None:
        if message.type != "error":
            return
        source = message.location.get("url") or page.url
        # Chromium asks every site for /favicon.ico by itself.
        if source.endswith("/favicon.ico"):
            return
        # A form sent back with what needs fixing answers 422 on purpose; Chromium logs every
        # non-2xx page load as an error.
        if "status of 422" in message.text:
            return
        error = f"console error from {source}: {message.text}"
        if any(pattern.search(error) for pattern in self.expected):
            return
        self.errors.append(error)

    def console_errors(self) -> list[str]:
        return list(self.errors)


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^\w.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


@pytest.fixture
def chromium_executable() -> Path:
    """Debian's Chromium; without it the browser tests skip, except under REQUIRE_BROWSER=1
    (CI), where they fail."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {message}", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def chromium(chromium_executable, live_server_url):
    """Headless Chromium. It depends on the live server so that it closes before the server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(request, chromium, live_server_url) -> Iterator[Callable[..., Any]]:
    """Open a page in a fresh browser context (its own cookies) on the live server:
    `new_page()` or `new_page(java_script_enabled=False)`. Relative URLs go to the server.

    On failure each page leaves a screenshot and its HTML in artifacts/browser/."""
    session = BrowserSession()
    request.node.browser_session = session
    contexts = []

    def open_page(**context_options):
        context = chromium.new_context(base_url=live_server_url, **context_options)
        context.set_default_timeout(10_000)
        context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        session.watch(page)
        return page

    yield open_page

    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = _artifact_name(request.node.nodeid)
        for index, page in enumerate(session.pages):
            stem = ARTIFACTS / (name if index == 0 else f"{name}-{index + 1}")
            with contextlib.suppress(Exception):  # a crashed page must not hide the failure
                page.screenshot(path=f"{stem}.png", full_page=True)
                print(f"\nbrowser screenshot: {stem}.png")
            with contextlib.suppress(Exception):
                Path(f"{stem}.html").write_text(page.content(), encoding="utf-8")
                print(f"browser page HTML: {stem}.html")
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def browser_page(new_page):
    """A page with JavaScript on, as most participants have it."""
    return new_page()


@pytest.fixture
def orm(transactional_db) -> Callable[..., Any]:
    """Run a database call from the test body: `orm(ValuesCard.objects.get, title="...")`.

    Playwright's sync API keeps its event loop registered as running on the test's thread, so
    Django (rightly) refuses ORM calls there. They run in a short-lived thread instead, which
    closes its connection; Django's async-safety check stays on everywhere, the live server
    included. Return model instances or lists, not lazy querysets."""

    def call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        def run() -> T:
            try:
                return function(*args, **kwargs)
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(run).result(timeout=30)

    return call

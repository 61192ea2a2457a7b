"""The security tests that drive Chromium use the browser tests' fixtures (the live server,
Chromium, `orm`) and their hooks: a page that logged a JS error or a Content-Security-Policy
violation fails its test, and a failure leaves screenshots in artifacts/browser/."""

from tests.browser.conftest import (  # noqa: F401
    chromium,
    chromium_executable,
    live_server_url,
    new_page,
    orm,
    pytest_runtest_call,
    pytest_runtest_makereport,
)

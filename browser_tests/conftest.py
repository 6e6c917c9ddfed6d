"""Fixtures: the running portal (once per session), one headless Chromium, and people logged in.

Nothing here touches a test database: every check goes through the portal's own pages, and the
few things set up behind its back (a user in two groups) go through its manage.py.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import django
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser_tests.portal import PROJECT_DIR, Portal, running_portal

# The tests import the portal's own message constants, and some of those modules need Django set
# up. Its settings create folders under PORTAL_VAR_DIR, so point that at a throwaway folder; the
# portal processes get a folder of their own.
SETTINGS_VAR_DIR = tempfile.mkdtemp(prefix="byol-browser-tests-settings-")
os.environ["PORTAL_VAR_DIR"] = SETTINGS_VAR_DIR
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()

from browser_tests.steps import (  # noqa: E402 -- needs django.setup()
    WIN10_AMI,
    Submitted,
    log_in_as,
    submit_request,
    unique_name,
    wait_for_passing_checks,
)

# Debian's Chromium: Playwright's own browser download is not available here.
CHROMIUM = os.environ.get("BROWSER_TESTS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP, PHONE = 1280, 390
DEFAULT_TIMEOUT_MS = 15_000


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SETTINGS_VAR_DIR, ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    # Lets a fixture see, at teardown, whether its test failed (to keep a picture of the pages).
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("BROWSER_TESTS_ARTIFACTS", PROJECT_DIR / "test-artifacts" / "browser"))
    (path / "screenshots").mkdir(parents=True, exist_ok=True)
    (path / "failures").mkdir(parents=True, exist_ok=True)
    return path


def log_path(artifacts_dir: Path, name: str) -> Path:
    """A process's log in the artifacts, one per test process when pytest-xdist runs several."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return artifacts_dir / (f"{name}-{worker}.log" if worker else f"{name}.log")


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Portal]:
    with running_portal(tmp_path_factory.mktemp("portal"), log_path(artifacts_dir, "portal")) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: apt-get install chromium, or set BROWSER_TESTS_CHROMIUM")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


LogIn = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser, portal: Portal, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[LogIn]:
    """A new browser window (its own cookies) on the portal; keeps pictures of it if the test fails."""
    pages: list[Page] = []

    def open_page(*, width: int = DESKTOP) -> Page:
        # A plain narrow viewport, not a mobile emulation: a mobile browser would zoom out to fit
        # a page that overflows, and hide the very horizontal scroll the layout tests look for.
        context = browser.new_context(base_url=portal.url, viewport={"width": width, "height": 900})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        page = context.new_page()
        pages.append(page)
        return page

    yield open_page
    report = getattr(request.node, "report_call", None)
    for number, page in enumerate(pages):
        if report is not None and report.failed and not page.is_closed():
            page.screenshot(path=artifacts_dir / "failures" / f"{request.node.name}-{number}.png", full_page=True)
        page.context.close()


@pytest.fixture
def log_in(open_page: LogIn) -> LogIn:
    """Log a demo user in through the login page, in a window of their own."""

    def log_in(username: str, *, width: int = DESKTOP) -> Page:
        page = open_page(width=width)
        log_in_as(page, username)
        return page

    return log_in


@pytest.fixture(scope="session")
def checked_request(browser: Browser, portal: Portal) -> Submitted:
    """A request by requester2 with tags, waiting for a decision, its pre-flight checks passed."""
    context = browser.new_context(base_url=portal.url)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    log_in_as(page, "requester2")
    submitted = submit_request(
        page,
        image_name=unique_name("sample-win10"),
        windows="Windows 10",
        process="BYOL_REGULAR",
        ami=WIN10_AMI,
        justification="Call-centre desktops.\nThe current image expires at the end of the month.",
        tags=(("cost-centre", "4711"), ("team", "call-centre")),
    )
    wait_for_passing_checks(page)
    context.close()
    return submitted

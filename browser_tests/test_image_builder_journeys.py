"""The import through EC2 Image Builder, as people see it: the form narrows to the chosen path,
the approved import's progress bar moves on the page without a reload, and an import that
fails its checks ends with AWS's reasons shown."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_tests.conftest import LogIn
from browser_tests.portal import SANDBOX_IMPORT_DELAY, Portal
from browser_tests.steps import (
    IMPORT_TIMEOUT_MS,
    assert_accessible,
    decide,
    screenshot,
    state_badge,
    submit_form,
    unique_name,
    wait_for_passing_checks,
)
from sandbox import SANDBOX_ACCOUNT_ID

TARGET = "Local AWS sandbox (123456789012, us-east-1)"
ARN_PREFIX = f"arn:aws:imagebuilder:us-east-1:{SANDBOX_ACCOUNT_ID}"
INFRASTRUCTURE = f"{ARN_PREFIX}:infrastructure-configuration/byol-import"
WIN11_VERSION = f"{ARN_PREFIX}:image/byol-windows-11/1.0.0/1"
OFFICE_VERSION = f"{ARN_PREFIX}:image/byol-windows-10-office/1.0.0/1"
# Long enough for the page to see several progress figures; the sandbox's own default is restored.
SLOW_IMPORT_SECONDS = 24


@pytest.fixture
def slow_imports(portal: Portal) -> Iterator[None]:
    portal.control_sandbox("config", {"import_delay": SLOW_IMPORT_SECONDS})
    yield
    portal.control_sandbox("config", {"import_delay": SANDBOX_IMPORT_DELAY})


def fill_image_builder_form(page: Page, *, image_name: str, version: str, windows: str) -> None:
    page.get_by_label("AWS target").select_option(label=TARGET)
    page.get_by_label("Through EC2 Image Builder").check()
    page.get_by_label("Windows version").select_option(label=windows)
    page.get_by_label("Source", exact=True).select_option(value="image_version")
    page.get_by_label("Image Builder image version").fill(version)
    page.get_by_label("Image Builder infrastructure configuration").fill(INFRASTRUCTURE)
    page.get_by_label("Compute type").select_option(value="BASE")
    page.get_by_label("Protocol").select_option(value="DCV")
    page.get_by_label("Image name").fill(image_name)
    page.get_by_label("Image description").fill("Windows through Image Builder")
    page.get_by_label("Justification").fill("Designers need the G6 path later; this is the first image.")


def test_the_form_shows_only_the_chosen_paths_fields_and_windows_11_takes_away_pcoip(log_in: LogIn) -> None:
    page = log_in("requester")
    page.goto("/requests/new/")

    expect(page.get_by_label("Ingestion process")).to_be_visible()
    expect(page.get_by_label("Compute type")).to_be_hidden()
    page.get_by_label("Through EC2 Image Builder").check()
    expect(page.get_by_label("Ingestion process")).to_be_hidden()
    expect(page.get_by_label("Microsoft Office")).to_be_hidden()
    expect(page.get_by_label("Compute type")).to_be_visible()
    page.get_by_label("Source", exact=True).select_option(value="import_task")
    expect(page.get_by_label("VM import task")).to_be_visible()
    expect(page.get_by_label("Image Builder image version")).to_be_hidden()

    page.get_by_label("Windows version").select_option(label="Windows 11")
    expect(page.get_by_label("Protocol").locator("option[value=PCOIP]")).to_be_disabled()
    page.get_by_label("Windows version").select_option(label="Windows 10")
    page.get_by_label("Compute type").select_option(value="GRAPHICS_G6")
    expect(page.get_by_label("Protocol").locator("option[value=PCOIP]")).to_be_disabled()
    expect(page.get_by_label("Protocol").locator("option[value=DCV]")).to_be_enabled()
    assert_accessible(page)


def test_an_image_builder_import_moves_its_progress_bar_without_reloading_the_page(
    log_in: LogIn, slow_imports: None, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    requester.goto("/requests/new/")
    fill_image_builder_form(requester, image_name=unique_name("ib-win11"), version=WIN11_VERSION, windows="Windows 11")
    submitted = submit_form(requester)
    wait_for_passing_checks(requester)
    expect(requester.locator(".preflight-checks")).to_contain_text("The Image Builder image version is available")

    approver = log_in("approver")
    approver.goto(submitted.path)
    decide(approver, "Approve")
    bar = approver.locator("#progress-bar")
    expect(bar).to_be_visible(timeout=IMPORT_TIMEOUT_MS)
    # From here on the page must not reload: a marker set in it survives only if it does not.
    approver.evaluate("window.__stillTheSamePage = true")
    first = int(bar.get_attribute("value") or 0)
    expect(bar).not_to_have_attribute("value", str(first), timeout=IMPORT_TIMEOUT_MS)
    assert approver.evaluate("window.__stillTheSamePage === true")
    screenshot(approver, artifacts_dir, "image-builder-progress")
    assert_accessible(approver)

    expect(state_badge(approver)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
    expect(approver.locator("#stage-history")).to_contain_text(re.compile(r"Stages so far \(\d+\)"))


def test_an_image_builder_import_that_fails_shows_awss_reasons(log_in: LogIn) -> None:
    requester = log_in("requester")
    requester.goto("/requests/new/")
    fill_image_builder_form(
        requester, image_name=unique_name("ib-office"), version=OFFICE_VERSION, windows="Windows 10"
    )
    submitted = submit_form(requester)
    wait_for_passing_checks(requester)

    approver = log_in("approver")
    approver.goto(submitted.path)
    decide(approver, "Approve")

    expect(state_badge(approver)).to_have_text("Failed", timeout=IMPORT_TIMEOUT_MS)
    failure = approver.locator("#failure")
    expect(failure).to_contain_text("OfficeInstalled")
    expect(failure).to_contain_text("the request itself must change")

"""A rollout as people follow it: the request page's checklist moving in place while the steps
run, then the images and bundles of the target, each page accessible on a desktop and a phone."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_tests.conftest import DESKTOP, PHONE, LogIn
from browser_tests.portal import Portal
from browser_tests.steps import (
    IMPORT_TIMEOUT_MS,
    WIN10_AMI,
    Submitted,
    assert_accessible,
    decide,
    has_horizontal_scroll,
    screenshot,
    state_badge,
    submit_request,
    tables_that_scroll_sideways,
    unique_name,
    wait_for_passing_checks,
)

PARTNER = "210987654321"


def give_plan(portal: Portal, request: Submitted, plan: dict) -> None:
    """The delivery plan, set behind the form's back (the form's own plan fields have their tests)."""
    portal.manage(
        "shell",
        "-c",
        "import json; from imports.models import ImportRequest; "
        f"ImportRequest.objects.filter(pk={request.pk}).update(delivery_plan=json.loads({json.dumps(plan)!r}))",
    )


def assert_fits_and_accessible(page: Page) -> None:
    assert_accessible(page)
    assert not has_horizontal_scroll(page)
    assert tables_that_scroll_sideways(page) == []


@pytest.fixture(scope="module")
def rolled_out() -> dict:
    return {}


def test_the_checklist_moves_in_place_while_the_steps_run(
    log_in: LogIn, portal: Portal, artifacts_dir: Path, rolled_out: dict
) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, ami=WIN10_AMI, windows="Windows 10", image_name=unique_name("rollout"))
    wait_for_passing_checks(requester)
    give_plan(
        portal,
        submitted,
        {
            "copies": [{"region": "eu-west-1", "bundle": False}],
            "shares": [{"account_id": PARTNER, "region": "us-east-1"}],
        },
    )
    requester.reload()
    expect(requester.locator("#rollout").get_by_role("listitem")).to_have_text(
        [f"Copy {submitted.image_name} from us-east-1 to eu-west-1", f"Share with account {PARTNER} in us-east-1"]
    )
    assert_fits_and_accessible(requester)

    approver = log_in("approver")
    approver.goto(submitted.path)
    # AWS answers both calls slowly (within the client's read timeout), and the copy is PENDING a
    # while after: the page is there to see the share done in place while the copy still runs.
    slow = ["CopyWorkspaceImage", "UpdateWorkspaceImagePermission"]
    portal.control_sandbox("faults", {"latency_ms": 8000, "operations": slow})
    try:
        decide(approver, "Approve")
        expect(state_badge(approver)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
        expect(approver.locator("#rollout-summary")).to_contain_text("of 2 steps done")
        approver.evaluate("window.stillTheSamePage = true")
        expect(approver.locator("#step-2 .step-state")).to_have_text("Done", timeout=30_000)
        assert approver.evaluate("window.stillTheSamePage === true")
        expect(approver.locator("#rollout-announcer")).to_contain_text("1 of 2 steps done")
    finally:
        portal.control_sandbox("faults", {"latency_ms": 0, "operations": None})
    # The rollout's end reloads the page: its header says so.
    expect(approver.locator("#request-rollout")).to_have_text("Rollout done", timeout=IMPORT_TIMEOUT_MS)
    expect(approver.locator("#rollout-summary")).to_have_text("2 of 2 steps done")
    copy = approver.locator("#step-1 a")
    expect(copy).to_have_attribute("target", "_blank")
    expect(copy).to_contain_text("wsi-")
    screenshot(approver, artifacts_dir, "rollout-done")
    assert_fits_and_accessible(approver)
    rolled_out["request"] = submitted


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("user", ["requester", "auditor"])
def test_the_images_and_bundles_pages_are_accessible_and_fit_the_screen(
    log_in: LogIn, rolled_out: dict, user: str, width: int, artifacts_dir: Path
) -> None:
    page = log_in(user, width=width)
    if width == DESKTOP:
        page.get_by_role("link", name="Images and bundles").click()
    else:
        page.goto("/targets/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Images and bundles")
    assert_fits_and_accessible(page)

    page.get_by_role("link", name="Local AWS sandbox").first.click()
    expect(page.get_by_role("heading", name="Image quota in use")).to_be_visible()
    if "request" in rolled_out:
        expect(page.get_by_role("link", name=rolled_out["request"].reference)).to_be_visible()
    screenshot(page, artifacts_dir, f"target-images-{user}-{width}")
    assert_fits_and_accessible(page)

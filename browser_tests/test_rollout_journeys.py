"""From an image to desktops: a request with a delivery plan, approved once, rolled out step by
step by the portal's worker against the sandbox, as the requester and the approver see it."""

import re
import time
from pathlib import Path

import boto3
from playwright.sync_api import Locator, Page, expect

from browser_tests.conftest import LogIn
from browser_tests.portal import Portal
from browser_tests.steps import (
    IMPORT_TIMEOUT_MS,
    WIN10_AMI,
    assert_accessible,
    decide,
    fill_request_form,
    screenshot,
    state_badge,
    submit_form,
    unique_name,
    wait_for_passing_checks,
)

# The import, then a bundle, a copy that AWS works on for the sandbox's import delay, its bundle
# and the shares, each a message to the worker and the copy a poll or two away.
ROLLOUT_TIMEOUT_MS = 120_000
AWAY = "eu-west-1"
PARTNER = "210987654321"


def rollout(page: Page) -> Locator:
    return page.locator("#rollout")


def submit_with_plan(page: Page, *, bundle: str, copies: str = "", share: str = "") -> str:
    page.goto("/requests/new/")
    fill_request_form(page, image_name=unique_name("rollout"))
    page.get_by_label("Make a bundle from the image").check()
    page.get_by_label("Bundle name").fill(bundle)
    page.get_by_label("Bundle description").fill("Finance desktops")
    page.get_by_label("Bundle hardware").select_option("STANDARD")
    if copies:
        page.get_by_label("Copy to regions").fill(copies)
        page.get_by_label("Make the bundle in each copy's region too").check()
    if share:
        page.get_by_label("Share with AWS accounts").fill(share)
        if copies:
            page.get_by_label("Share the copies too, from their regions").check()
    submitted = submit_form(page)
    wait_for_passing_checks(page)
    return submitted.path


def approve(approver: Page, path: str) -> None:
    approver.goto(path)
    decide(approver, "Approve")
    expect(state_badge(approver)).to_contain_text("Available", timeout=IMPORT_TIMEOUT_MS)


def test_a_bundle_a_copy_with_its_bundle_and_shares_approved_once_end_with_every_step_done(
    log_in: LogIn, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    bundle = unique_name("finance")
    path = submit_with_plan(requester, bundle=bundle, copies=AWAY, share=PARTNER)
    planned = rollout(requester).locator(".planned-steps li")
    expect(planned).to_have_count(5)
    expect(planned.nth(0)).to_contain_text(f"Bundle {bundle}")
    expect(planned.nth(1)).to_contain_text(f"to {AWAY}")
    screenshot(requester, artifacts_dir, "request-with-delivery-plan")

    approver = log_in("approver")
    approve(approver, path)
    screenshot(approver, artifacts_dir, "rollout-under-way")
    expect(rollout(approver).locator("#rollout-summary")).to_contain_text(
        "5 of 5 steps done", timeout=ROLLOUT_TIMEOUT_MS
    )

    steps = rollout(approver).locator(".rollout-step")
    expect(steps).to_have_count(5)
    for number in range(5):
        expect(steps.nth(number).locator(".step-state")).to_have_text("Done")
    expect(steps.nth(0)).to_contain_text(re.compile(r"In AWS: wsb-"))
    expect(steps.nth(1)).to_contain_text(re.compile(r"In AWS: wsi-"))
    expect(steps.nth(1).get_by_role("link")).to_have_attribute("href", re.compile(f"region={AWAY}"))
    expect(steps.nth(3)).to_contain_text(f"Share with account {PARTNER}")
    screenshot(approver, artifacts_dir, "rollout-done")
    assert_accessible(approver)

    # Approved once: the one approval covers the import and the whole plan.
    approvals = approver.locator(".timeline-event").filter(has_text="Submitted → Approved")
    expect(approvals).to_have_count(1)


def test_a_step_that_fails_is_explained_and_an_approver_retries_it_alone(
    log_in: LogIn, portal: Portal, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    bundle = unique_name("clash")
    path = submit_with_plan(requester, bundle=bundle, share=PARTNER)

    # After the checks passed, someone makes a bundle of that name by hand, from an image of theirs.
    workspaces = boto3.client(
        "workspaces",
        region_name="us-east-1",
        endpoint_url=portal.sandbox_url,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",  # noqa: S106 -- the sandbox takes any credentials
    )
    theirs = workspaces.import_workspace_image(
        Ec2ImageId=WIN10_AMI,
        IngestionProcess="BYOL_REGULAR_WSP",
        ImageName=unique_name("by-hand"),
        ImageDescription="made by hand",
    )["ImageId"]
    deadline = time.monotonic() + 30
    while workspaces.describe_workspace_images(ImageIds=[theirs])["Images"][0]["State"] != "AVAILABLE":
        assert time.monotonic() < deadline, "the hand-made image did not become AVAILABLE"
        time.sleep(0.5)
    by_hand = workspaces.create_workspace_bundle(
        BundleName=bundle,
        BundleDescription="made by hand",
        ImageId=theirs,
        ComputeType={"Name": "STANDARD"},
        UserStorage={"Capacity": "50"},
    )["WorkspaceBundle"]["BundleId"]

    approver = log_in("approver")
    approve(approver, path)
    summary = rollout(approver).locator("#rollout-summary")
    expect(summary).to_contain_text("1 of 2 steps done, 1 failed", timeout=ROLLOUT_TIMEOUT_MS)
    failed = rollout(approver).locator(".rollout-step").nth(0)
    expect(failed.locator(".step-state")).to_have_text("Failed")
    expect(failed.locator(".step-failure")).to_contain_text(by_hand)
    expect(failed.locator(".step-failure")).to_contain_text("What to do:")
    expect(rollout(approver).locator(".rollout-step").nth(1).locator(".step-state")).to_have_text("Done")
    expect(state_badge(approver)).to_contain_text("Available")
    screenshot(approver, artifacts_dir, "rollout-step-failed")
    assert_accessible(approver)

    # The requester sees why, but only an approver may retry.
    requester.goto(path)
    expect(rollout(requester).locator(".step-failure")).to_contain_text("What to do:")
    expect(rollout(requester).get_by_role("button", name="Retry this step")).to_have_count(0)

    workspaces.delete_workspace_bundle(BundleId=by_hand)
    approver.get_by_label("Comment on the retry").fill("Deleted the hand-made bundle.")
    approver.get_by_role("button", name="Retry this step").click()
    expect(summary).to_contain_text("2 of 2 steps done", timeout=ROLLOUT_TIMEOUT_MS)
    expect(approver.locator(".timeline-event").filter(has_text="Deleted the hand-made bundle.")).to_have_count(1)
    assert_accessible(approver)

"""A request from the requester's form to the end of its import, as the people involved see it."""

import re
from pathlib import Path

from playwright.sync_api import expect

from browser_tests.conftest import LogIn
from browser_tests.portal import Portal
from browser_tests.steps import (
    FAILING_AMI,
    IMPORT_TIMEOUT_MS,
    WIN10_AMI,
    WIN11_AMI,
    WIN11_AMI_NAME,
    add_tags,
    assert_accessible,
    decide,
    fill_request_form,
    history,
    preflight,
    screenshot,
    state_badge,
    submit_form,
    submit_request,
    unique_name,
    wait_for_emails,
    wait_for_passing_checks,
)
from imports import rules, views
from imports.image_errors import EXPLANATIONS
from imports.workflow import Action


def test_a_requester_fixes_a_mistake_adds_tags_and_sees_the_preflight_results(
    log_in: LogIn, portal: Portal, artifacts_dir: Path
) -> None:
    page = log_in("requester")
    page.get_by_role("link", name="New import request").click()
    ami = page.get_by_label("Source AMI")
    offered = page.locator(f"datalist#{ami.get_attribute('list')} option", has_text=WIN11_AMI_NAME)
    expect(offered).to_have_attribute("value", WIN11_AMI)
    name = unique_name("finance-win11")
    # Windows 11 takes PCoIP processes off the list: that mistake cannot be made here any more
    # (the server still refuses it: test_forms). A name with a space can.
    page.get_by_label("Windows version").select_option(label="Windows 11")
    expect(page.get_by_label("Ingestion process").locator("option[value=BYOL_REGULAR]")).to_be_disabled()
    fill_request_form(
        page,
        image_name=name.replace("-", " ", 1),
        windows="Windows 11",
        process="BYOL_REGULAR_WSP",
        ami=offered.get_attribute("value"),
    )
    page.get_by_role("button", name="Submit for approval").click()

    image_name = page.get_by_label("Image name")
    expect(page.get_by_role("alert").first).to_have_text(views.MSG_CHECK_FORM)
    expect(page.locator("#div_id_image_name .invalid-feedback")).to_have_text(rules.MSG_IMAGE_NAME_FORMAT)
    expect(image_name).to_have_attribute("aria-invalid", "true")
    expect(image_name).to_have_accessible_description(re.compile(re.escape(rules.MSG_IMAGE_NAME_FORMAT)))
    expect(ami).to_have_value(WIN11_AMI)
    expect(page.get_by_label("Ingestion process")).to_have_value("BYOL_REGULAR_WSP")
    screenshot(page, artifacts_dir, "request-form-with-errors")
    assert_accessible(page)

    image_name.fill(name)
    add_tags(page, (("cost-centre", "4711"), ("team", "finance")))
    # A slow AWS keeps the checks running while the request page first shows, so the page is
    # seen to notice by itself that they finished.
    portal.control_sandbox("faults", {"latency_ms": 3000, "operations": ["DescribeAccount"]})
    try:
        submitted = submit_form(page)
        expect(page.get_by_role("status").first).to_have_text(views.MSG_SUBMITTED.format(reference=submitted.reference))
        expect(preflight(page)).to_contain_text("The checks of this version are running")
        page.wait_for_load_state()
        reloads: list[str] = []
        page.on("load", lambda loaded: reloads.append(loaded.url))
        wait_for_passing_checks(page)
    finally:
        portal.control_sandbox("faults", {"latency_ms": 0, "operations": None})

    assert reloads == [page.url]
    expect(state_badge(page)).to_have_text("Submitted")
    expect(page.locator(".request-params")).to_contain_text("cost-centre = 4711")
    expect(page.locator(".request-params")).to_contain_text("team = finance")
    expect(page.locator(".request-params")).to_contain_text("BYOL_REGULAR_WSP")
    expect(preflight(page).locator(".preflight-checks li")).not_to_have_count(0)
    expect(preflight(page).locator(".check-fail")).to_have_count(0)
    expect(preflight(page)).to_contain_text("Passed")
    assert_accessible(page)


def test_an_approver_approves_from_the_queue_and_the_page_follows_the_import_to_available(
    log_in: LogIn, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("design-win11"))
    wait_for_passing_checks(requester)

    approver = log_in("approver")
    expect(approver.locator("#queue-heading")).to_be_visible()
    screenshot(approver, artifacts_dir, "dashboard")
    approver.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    expect(approver.get_by_role("heading", name="Approvals queue")).to_be_visible()
    screenshot(approver, artifacts_dir, "approvals-queue")
    assert_accessible(approver)
    approver.get_by_role("link", name=submitted.reference, exact=True).click()
    expect(preflight(approver)).to_contain_text("Nothing blocks the import.")
    assert_accessible(approver)

    reloads: list[str] = []
    decide(approver, "Approve")
    expect(approver.get_by_role("status").first).to_have_text(
        views.MSG_ACTION_DONE[Action.APPROVE].format(reference=submitted.reference)
    )
    approver.wait_for_load_state()
    approver.on("load", lambda page: reloads.append(page.url))
    expect(state_badge(approver)).to_have_text(re.compile("Submitting to AWS|Importing"), timeout=IMPORT_TIMEOUT_MS)
    expect(approver.locator("#import-under-way")).to_be_visible()
    screenshot(approver, artifacts_dir, "request-in-progress")
    expect(state_badge(approver)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
    expect(approver.locator("#import-under-way")).to_have_count(0)
    screenshot(approver, artifacts_dir, "request-available")

    assert reloads, "the page should have reloaded itself"
    assert set(reloads) == {approver.url}
    expect(approver.locator(".request-params")).to_contain_text(re.compile(r"WorkSpaces image\s*wsi-"))
    for change in ("Approved → Submitting to AWS", "Submitting to AWS → Importing", "Importing → Available"):
        expect(history(approver).filter(has_text=change)).to_have_count(1)
    expect(approver.get_by_role("heading", name="What you can do")).to_have_count(0)
    assert_accessible(approver)


def test_a_request_sent_back_then_rejected_shows_both_decisions_and_emails_the_requester(
    log_in: LogIn, portal: Portal
) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("lab-win10"), windows="Windows 10", ami=WIN10_AMI)
    approver = log_in("approver")
    approver.goto(submitted.path)
    decide(approver, "Send back for changes", "Describe which lab the image is for.")
    expect(state_badge(approver)).to_have_text("Changes requested")

    requester.goto(submitted.path)
    expect(state_badge(requester)).to_have_text("Changes requested")
    requester.get_by_role("link", name="Edit and resubmit").click()
    requester.get_by_label("Image description").fill("Physics lab desktops in building B")
    requester.get_by_role("button", name="Save and resubmit").click()
    expect(requester.get_by_role("status").first).to_have_text(
        views.MSG_RESUBMITTED.format(reference=submitted.reference)
    )
    expect(state_badge(requester)).to_have_text("Submitted")

    approver.goto(submitted.path)
    expect(approver.locator(".request-params")).to_contain_text("Physics lab desktops in building B")
    decide(approver, "Reject", "The lab closes in June: use the shared student image.")
    expect(state_badge(approver)).to_have_text("Rejected")

    requester.reload()
    expect(state_badge(requester)).to_have_text("Rejected")
    sent_back = history(requester).filter(has_text="Sent back for changes")
    expect(sent_back).to_contain_text("approver")
    expect(sent_back).to_contain_text("Describe which lab the image is for.")
    expect(history(requester).filter(has_text="Edited and resubmitted")).to_have_count(1)
    rejected = history(requester).filter(has_text="approver · Rejected")
    expect(rejected).to_contain_text("The lab closes in June: use the shared student image.")
    expect(requester.get_by_role("link", name=re.compile("Edit"))).to_have_count(0)

    [changes_mail] = wait_for_emails(
        portal.mail_dir, "requester@example.com", f"{submitted.reference} changes requested", count=1
    )
    assert "Describe which lab the image is for." in changes_mail.get_payload(decode=True).decode()
    [rejected_mail] = wait_for_emails(
        portal.mail_dir, "requester@example.com", f"{submitted.reference} rejected", count=1
    )
    rejected_body = rejected_mail.get_payload(decode=True).decode()
    assert "approver rejected your request" in rejected_body
    assert "The lab closes in June: use the shared student image." in rejected_body
    assert f"{portal.url}{submitted.path}" in rejected_body


def test_an_import_that_aws_refuses_ends_failed_and_each_error_code_is_explained(
    log_in: LogIn, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    submitted = submit_request(
        requester, image_name=unique_name("office-win10"), windows="Windows 10", process="BYOL_REGULAR", ami=FAILING_AMI
    )
    wait_for_passing_checks(requester)
    approver = log_in("approver")
    approver.goto(submitted.path)
    decide(approver, "Approve")

    expect(state_badge(approver)).to_have_text("Failed", timeout=IMPORT_TIMEOUT_MS)
    requester.reload()
    explanation = requester.get_by_role("alert").filter(has_text="Why the import failed")
    for code in ("OfficeInstalled", "DiskSizeExceeded"):
        expect(explanation.locator("li", has_text=code)).to_contain_text(EXPLANATIONS[code])
    expect(state_badge(requester)).to_have_text("Failed")
    expect(requester.locator("#next-step")).to_contain_text("the requester revises it")
    screenshot(requester, artifacts_dir, "request-failed")
    assert_accessible(requester)
    approver.reload()
    expect(approver.get_by_role("button", name="Retry the import")).to_have_count(0)  # it would fail the same way

    # The requester fixes the VM, makes a new AMI and revises the same request with it.
    requester.get_by_role("link", name="Revise this request").click()
    expect(requester.get_by_role("heading", level=1)).to_have_text(f"Revise {submitted.reference}")
    requester.get_by_label("Source AMI").fill(WIN10_AMI)
    requester.get_by_role("button", name="Save the revision for approval").click()
    expect(requester.get_by_role("status").first).to_have_text(views.MSG_REVISED.format(reference=submitted.reference))
    expect(state_badge(requester)).to_have_text("Submitted")
    expect(requester.locator("#earlier-failures")).to_contain_text(EXPLANATIONS["OfficeInstalled"])
    expect(requester.locator("#stale-image")).to_be_visible()
    wait_for_passing_checks(requester)

    approver.goto(submitted.path)
    decide(approver, "Approve")
    expect(state_badge(approver)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
    expect(history(approver).filter(has_text="Revised after a failed import")).to_have_count(1)
    expect(history(approver).filter(has_text="Deleted the failed image of an earlier attempt")).to_have_count(1)
    expect(approver.locator("#stale-image")).to_have_count(0)
    expect(approver.locator("#earlier-failures")).to_contain_text("OfficeInstalled")
    assert_accessible(approver)


def test_an_import_that_gave_up_while_aws_was_down_is_retried_by_an_approver_once_aws_is_back(
    log_in: LogIn, portal: Portal
) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("outage-win11"))
    wait_for_passing_checks(requester)
    approver = log_in("approver")
    approver.goto(submitted.path)
    portal.control_sandbox("faults", {"down": True})
    try:
        decide(approver, "Approve")
        expect(approver.locator("#waiting-for-aws")).to_contain_text("could not reach AWS", timeout=IMPORT_TIMEOUT_MS)
        expect(state_badge(approver)).to_have_text("Failed", timeout=IMPORT_TIMEOUT_MS)
    finally:
        portal.control_sandbox("faults", {"down": False})

    expect(approver.locator("#failure")).to_contain_text("AWS kept failing")
    expect(approver.locator("#next-step")).to_contain_text("nothing in the request needs to change")
    approver.get_by_role("button", name="Retry the import").click()
    expect(approver.get_by_role("status").first).to_have_text(
        views.MSG_ACTION_DONE[Action.RETRY].format(reference=submitted.reference)
    )
    expect(state_badge(approver)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
    expect(history(approver).filter(has_text="Retried the import")).to_have_count(1)
    expect(approver.locator("#earlier-failures")).to_contain_text("AWS kept failing")

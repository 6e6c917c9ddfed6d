"""What each role may do is enforced by the server, not only by the buttons a page shows."""

import re
from pathlib import Path

from playwright.sync_api import expect

from browser_tests.conftest import LogIn
from browser_tests.portal import Portal
from browser_tests.steps import (
    WIN10_AMI,
    assert_accessible,
    csrf_token,
    history,
    post_action,
    preflight,
    request_status,
    screenshot,
    state_badge,
    submit_request,
    unique_name,
    wait_for_passing_checks,
)
from imports.management.commands.seed_demo import DEMO_PASSWORD
from imports.roles import APPROVERS, REQUESTERS
from imports.workflow import MSG_NOT_ALLOWED, MSG_OWN_REQUEST


def test_an_auditor_sees_every_request_and_its_history_but_cannot_act_on_it(log_in: LogIn, artifacts_dir: Path) -> None:
    requester = log_in("requester2")
    submitted = submit_request(requester, image_name=unique_name("audit-win10"), windows="Windows 10", ami=WIN10_AMI)
    wait_for_passing_checks(requester)

    auditor = log_in("auditor")
    navigation = auditor.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="New request")).to_have_count(0)
    expect(navigation.get_by_role("link", name="Approvals")).to_have_count(0)
    navigation.get_by_role("link", name="All requests").click()
    filters = auditor.get_by_role("form", name="Filter requests")
    filters.get_by_label("State").select_option(label="Submitted")
    filters.get_by_label("Requester").fill("requester2")
    filters.get_by_role("button", name="Filter").click()
    expect(auditor).to_have_url(re.compile(r"state=submitted"))
    rows = auditor.locator("table tbody tr")
    expect(rows.filter(has_text=submitted.reference)).to_have_count(1)
    for row in rows.all():
        expect(row).to_contain_text("requester2")
        expect(row).to_contain_text("Submitted")
    expect(auditor.get_by_role("link", name="Export the audit history (CSV)")).to_be_visible()
    screenshot(auditor, artifacts_dir, "request-list-filtered")
    assert_accessible(auditor)

    auditor.get_by_role("link", name=submitted.reference, exact=True).click()
    expect(preflight(auditor)).to_contain_text("Nothing blocks the import.")
    expect(history(auditor).filter(has_text="requester2 · Submitted")).to_have_count(1)
    expect(auditor.locator("main").get_by_role("button")).to_have_count(0)
    expect(auditor.locator("main form")).to_have_count(0)

    for action in ("approve", "reject", "cancel", "recheck"):
        status, body = post_action(auditor, submitted, action, comment="Auditors only read.")
        assert (action, status) == (action, 403)
        assert MSG_NOT_ALLOWED in body
    assert request_status(auditor, submitted)["state"] == "submitted"
    auditor.reload()
    expect(state_badge(auditor)).to_have_text("Submitted")
    expect(history(auditor)).to_have_count(2)  # submitted, pre-flight checks ran: nothing more


def test_an_admin_finds_a_request_by_reference_with_its_audit_history_and_cannot_change_an_audit_event(
    log_in: LogIn, artifacts_dir: Path
) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("admin-win10"), windows="Windows 10", ami=WIN10_AMI)

    admin = log_in("admin")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Admin", exact=True).click()
    admin.get_by_role("link", name="Import requests").click()
    admin.get_by_role("textbox", name="Search").fill(submitted.reference)
    admin.get_by_role("button", name="Search").click()
    results = admin.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    expect(results).to_contain_text(submitted.image_name)
    results.get_by_role("link", name=submitted.reference).click()

    expect(admin.get_by_role("heading", level=1)).to_have_text(re.compile("View import request"))
    # The inline lists the newest events first: the submission is the oldest, last.
    expect(admin.locator(".inline-group td.field-action").last).to_have_text("Submitted")
    expect(admin.locator(".inline-group td.field-actor_username").last).to_have_text("requester")
    expect(admin.get_by_role("link", name=f"Open {submitted.reference} in the portal to act on it")).to_be_visible()
    expect(admin.locator("input[name=_save], input[name=_continue]")).to_have_count(0)
    expect(admin.get_by_role("link", name="Delete")).to_have_count(0)
    screenshot(admin, artifacts_dir, "admin-request")
    assert_accessible(admin)

    admin.goto(f"/admin/imports/requestevent/?q={submitted.reference}")
    submit_event = admin.locator("#result_list tbody tr").filter(
        has=admin.locator("td.field-action", has_text=re.compile(r"^Submitted$"))
    )
    expect(submit_event).to_have_count(1)
    submit_event.locator("th a").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(re.compile("View request event"))
    expect(admin.locator("input[name=_save], input[name=_continue]")).to_have_count(0)
    expect(admin.get_by_role("link", name="Delete")).to_have_count(0)
    change_url = admin.url
    token = csrf_token(admin)
    for url in (change_url, change_url.replace("/change/", "/delete/")):
        response = admin.request.post(url, form={"csrfmiddlewaretoken": token, "post": "yes", "comment": "edited"})
        assert (url, response.status) == (url, 403)
    admin.reload()
    expect(admin.locator(".field-comment")).not_to_contain_text("edited")
    expect(admin.locator(".field-action .readonly")).to_have_text("Submitted")


def test_nobody_can_approve_their_own_request_even_by_posting_the_form(log_in: LogIn, portal: Portal) -> None:
    portal.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User; "
        "user, _ = User.objects.get_or_create(username='lead', defaults={'email': 'lead@example.com'}); "
        f"user.set_password({DEMO_PASSWORD!r}); user.save(); "
        f"user.groups.set(Group.objects.filter(name__in=[{REQUESTERS!r}, {APPROVERS!r}]))",
    )
    lead = log_in("lead")
    submitted = submit_request(lead, image_name=unique_name("lead-win10"), windows="Windows 10", ami=WIN10_AMI)
    wait_for_passing_checks(lead)
    expect(lead.get_by_role("button", name="Approve")).to_have_count(0)
    lead.goto("/approvals/")
    expect(lead.get_by_role("link", name=submitted.reference)).to_have_count(0)

    lead.goto(submitted.path)
    before = request_status(lead, submitted)
    status, body = post_action(lead, submitted, "approve", version=before["version"])

    assert status == 403
    assert MSG_OWN_REQUEST in body
    assert request_status(lead, submitted) == before
    lead.reload()
    expect(state_badge(lead)).to_have_text("Submitted")
    expect(lead.locator(".request-params")).to_contain_text("Not approved yet")

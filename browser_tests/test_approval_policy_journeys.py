"""A target whose policy asks for two approvers: set in the admin, seen and met on the request page."""

import re
from collections.abc import Iterator
from datetime import date

import pytest
from playwright.sync_api import expect

from browser_tests.conftest import LogIn
from browser_tests.portal import Portal
from browser_tests.steps import (
    IMPORT_TIMEOUT_MS,
    assert_accessible,
    decide,
    history,
    state_badge,
    submit_request,
    unique_name,
    wait_for_passing_checks,
)
from imports import views
from imports.workflow import Action

TARGET = "Local AWS sandbox"


@pytest.fixture
def two_approvers_policy(portal: Portal) -> Iterator[None]:
    """The demo target asks for two approvers during the test, and one again after it."""
    yield
    back = (
        f"from imports.models import AwsTarget; AwsTarget.objects.filter(name={TARGET!r}).update(approvals_required=1)"
    )
    portal.manage("shell", "-c", back)


def test_two_approvers_approve_the_same_version_before_the_import_starts(
    log_in: LogIn, two_approvers_policy: None
) -> None:
    admin = log_in("admin")
    admin.goto("/admin/imports/awstarget/")
    admin.get_by_role("link", name=TARGET, exact=True).click()
    admin.get_by_label("Approvals required").fill("2")
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.locator(".messagelist")).to_contain_text("was changed successfully")

    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("prod-win11"))
    wait_for_passing_checks(requester)
    expect(requester.locator("#approval-policy")).to_have_text("2 different approvers")
    expect(requester.locator("#approvals")).to_contain_text("Nobody yet")
    expect(requester.locator("#approvals")).to_contain_text("Can still approve: approver, approver2")

    first = log_in("approver")
    first.goto(submitted.path)
    decide(first, "Approve (1 of 2)")
    expect(first.get_by_role("status").first).to_have_text(
        views.MSG_APPROVAL_RECORDED.format(reference=submitted.reference, missing=1, s="")
    )
    expect(state_badge(first)).to_have_text("Submitted")
    expect(first.locator("#approvals")).to_contain_text(re.compile(r"approver \(\d{4}-\d\d-\d\d \d\d:\d\d\)"))
    expect(first.locator("#approvals")).to_contain_text("version 1: 1 of 2")
    expect(first.locator("#approvals")).to_contain_text("Can still approve: approver2.")
    # Approving again is not offered; rejecting still is.
    expect(first.locator("#approved-by-you")).to_contain_text("1 more approval from other approvers needed")
    expect(first.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    expect(first.get_by_role("button", name="Reject")).to_be_visible()
    expect(history(first).filter(has_text="Approved (more approvals needed)")).to_have_count(1)
    assert_accessible(first)

    second = log_in("approver2")
    second.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    second.get_by_role("link", name=submitted.reference, exact=True).click()
    decide(second, "Approve")
    expect(second.get_by_role("status").first).to_have_text(
        views.MSG_ACTION_DONE[Action.APPROVE].format(reference=submitted.reference)
    )
    expect(second.locator("#approvals")).to_contain_text("version 1: 2 of 2")
    expect(state_badge(second)).to_have_text("Available", timeout=IMPORT_TIMEOUT_MS)
    expect(history(second).filter(has_text="Submitted → Approved")).to_have_count(1)


@pytest.fixture
def production_approvers(portal: Portal) -> Iterator[None]:
    """Only the Production approvers (the demo user approver) decide the demo target's requests
    during the test; everyone in Approvers again after it."""
    policy = (
        "from django.contrib.auth.models import Group, User; from imports.models import AwsTarget as T; "
        "g, _ = Group.objects.get_or_create(name='Production approvers'); "
        "g.user_set.add(User.objects.get(username='approver')); "
        f"T.objects.get(name={TARGET!r}).approver_groups.set([g])"
    )
    portal.manage("shell", "-c", policy)
    yield
    back = f"from imports.models import AwsTarget as T; T.objects.get(name={TARGET!r}).approver_groups.clear()"
    portal.manage("shell", "-c", back)


def test_an_approver_away_names_a_stand_in_who_decides_in_their_name(log_in: LogIn, production_approvers: None) -> None:
    requester = log_in("requester")
    submitted = submit_request(requester, image_name=unique_name("prod-standin"))
    wait_for_passing_checks(requester)
    expect(requester.locator("#approval-policy")).to_have_text("One approver, from Production approvers")

    # approver2 is not a Production approver: the request is not theirs to decide.
    second = log_in("approver2")
    second.goto(submitted.path)
    expect(second.get_by_role("heading", name="What you can do")).to_have_count(0)

    away = log_in("approver")
    away.get_by_role("navigation", name="Main").get_by_role("link", name="Stand-ins").click()
    expect(away.get_by_role("heading", name="Stand-ins", level=1)).to_be_visible()
    away.get_by_role("combobox", name="Stand-in").select_option(label="approver2")
    today = date.today().isoformat()
    away.locator("#id_starts_on").fill(today)
    away.locator("#id_ends_on").fill(today)
    away.get_by_role("button", name="Name the stand-in").click()
    expect(away.get_by_role("status").first).to_contain_text("approver2 stands in for you from")
    expect(away.locator("#stand-ins tbody tr")).to_have_count(1)
    assert_accessible(away)

    second.get_by_role("navigation", name="Main").get_by_role("link", name="Stand-ins").click()
    expect(second.get_by_role("region", name="You stand in for")).to_contain_text("approver")
    second.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    second.get_by_role("link", name=submitted.reference, exact=True).click()
    decide(second, "Approve")
    expect(second.get_by_role("status").first).to_have_text(
        views.MSG_ACTION_DONE[Action.APPROVE].format(reference=submitted.reference)
    )
    expect(history(second).filter(has_text="approver2 for approver")).to_have_count(1)

    # Back early: the stand-in is revoked, and nothing of it is left.
    away.get_by_role("button", name="Revoke approver2").click()
    expect(away.get_by_role("status").first).to_have_text("approver2 no longer stands in for you.")
    expect(away.locator("#stand-ins tbody")).to_contain_text("Nobody stands in for you now or later.")

"""Every main page works for people using a screen reader, a keyboard or a phone."""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser_tests.conftest import DESKTOP, PHONE, LogIn
from browser_tests.steps import (
    WIN11_AMI,
    Submitted,
    has_horizontal_scroll,
    log_in_as,
    serious_accessibility_violations,
    state_badge,
    tables_that_scroll_sideways,
    unique_name,
    unlabelled_controls,
)
from imports import views


@dataclass(frozen=True)
class MainPage:
    user: str | None  # None: not logged in
    path: str  # "{request}" stands for the request page of the checked request
    heading: str
    submit_empty_form: bool = False


MAIN_PAGES = {
    "login": MainPage(None, "/accounts/login/", "Log in"),
    "dashboard-requester": MainPage("requester2", "/", "Dashboard"),
    "dashboard-approver": MainPage("approver", "/", "Dashboard"),
    "dashboard-auditor": MainPage("auditor", "/", "Dashboard"),
    "request-form": MainPage("requester", "/requests/new/", "New import request"),
    "request-form-with-errors": MainPage("requester", "/requests/new/", "New import request", submit_empty_form=True),
    "request-page-approver": MainPage("approver", "{request}", "{reference}"),
    "request-page-requester": MainPage("requester2", "{request}", "{reference}"),
    "approvals-queue": MainPage("approver", "/approvals/", "Approvals queue"),
    "request-list-filtered": MainPage("auditor", "/requests/?state=submitted&q=requester2", "All requests"),
    "audit-export": MainPage("auditor", "/audit/exports/", "Export the audit history"),
    "not-allowed": MainPage("requester", "/approvals/", "You are not allowed to do that"),
}


def open_main_page(page: Page, main_page: MainPage, checked_request: Submitted) -> None:
    if main_page.user:
        log_in_as(page, main_page.user)
    page.goto(main_page.path.replace("{request}", checked_request.path))
    if main_page.submit_empty_form:
        page.get_by_role("button", name="Submit for approval").click()
        expect(page.get_by_role("alert").first).to_have_text(views.MSG_CHECK_FORM)
    heading = main_page.heading.replace("{reference}", checked_request.reference)
    expect(page.get_by_role("heading", level=1)).to_contain_text(heading)


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("name", MAIN_PAGES)
def test_each_main_page_has_no_serious_accessibility_violation_and_fits_the_screen(
    name: str, width: int, open_page: LogIn, checked_request: Submitted, artifacts_dir: Path
) -> None:
    page = open_page(width=width)
    open_main_page(page, MAIN_PAGES[name], checked_request)
    page.screenshot(path=artifacts_dir / "pages" / f"{name}-{width}.png", full_page=True)
    if name == "request-page-requester" and width == PHONE:
        page.screenshot(path=artifacts_dir / "screenshots" / "request-page-phone.png", full_page=True)

    assert serious_accessibility_violations(page) == []
    assert unlabelled_controls(page) == []
    assert not has_horizontal_scroll(page)
    assert tables_that_scroll_sideways(page) == []


def test_a_requester_can_fill_in_and_submit_a_request_with_the_keyboard_alone(log_in: LogIn) -> None:
    page = log_in("requester")
    page.goto("/requests/new/")
    keyboard = page.keyboard

    def tab_to(label: str) -> None:
        keyboard.press("Tab")
        expect(page.get_by_label(label)).to_be_focused()

    keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    keyboard.press("Enter")
    tab_to("AWS target")
    keyboard.press("ArrowDown")
    tab_to("Classic import (ImportWorkspaceImage)")
    tab_to("Windows version")
    keyboard.press("ArrowDown")
    keyboard.press("ArrowDown")
    tab_to("Source AMI")
    keyboard.type(WIN11_AMI)
    tab_to("Ingestion process")
    keyboard.type("WSP")
    tab_to("Microsoft Office")
    tab_to("Image name")
    name = unique_name("keyboard-win11")
    keyboard.type(name)
    tab_to("Image description")
    keyboard.type("Desktop for the keyboard-only test")
    # After the import: without a bundle its settings are hidden, and a copy's bundle is off.
    tab_to("Make a bundle from the image")
    tab_to("Copy to regions")
    tab_to("Share with AWS accounts")
    tab_to("Share the copies too, from their regions")
    tab_to("Justification")
    keyboard.type("Everything here is reachable without a mouse.")
    tab_to("Tag 1 key")
    keyboard.type("owner")
    tab_to("Tag 1 value")
    keyboard.type("it-desk")
    tab_to("Remove tag 1")
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add a tag")).to_be_focused()
    keyboard.press("Space")
    expect(page.get_by_label("Tag 2 key")).to_be_focused()
    keyboard.type("team")
    tab_to("Tag 2 value")
    keyboard.type("workplace")
    tab_to("Remove tag 2")
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Submit for approval")).to_be_focused()
    keyboard.press("Enter")

    # The skip link's #main stays on the address through the form's post and redirect.
    expect(page).to_have_url(re.compile(r"/requests/\d+/(#main)?$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(state_badge(page)).to_have_text("Submitted")
    params = page.locator(".request-params")
    for text in (
        "Local AWS sandbox",
        WIN11_AMI,
        "Windows 11",
        "BYOL_REGULAR_WSP",
        "owner = it-desk",
        "team = workplace",
    ):
        expect(params).to_contain_text(text)

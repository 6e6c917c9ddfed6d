"""What people do on the portal's pages, as small steps the journeys are written in."""

import email
import re
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from imports.management.commands.seed_demo import DEMO_PASSWORD

TARGET = "Local AWS sandbox (123456789012, us-east-1)"
# AMIs the sandbox seeds in the target's account (sandbox/seed.py).
WIN10_AMI = "ami-05eed000000000001"
WIN11_AMI = "ami-05eed000000000002"
WIN11_AMI_NAME = "win11-23h2-byol-2026-10"
FAILING_AMI = "ami-05eed000000000005"  # tagged sandbox:error-details=OfficeInstalled,DiskSizeExceeded
# How long the worker may take: pre-flight checks, then claim, import call, and the sandbox's
# import delay plus a poll or two, with the page's own reload on top.
CHECKS_TIMEOUT_MS = 30_000
IMPORT_TIMEOUT_MS = 60_000
SERIOUS = {"critical", "serious"}
_axe = Axe()


@dataclass(frozen=True)
class Submitted:
    reference: str
    pk: int
    image_name: str

    @property
    def path(self) -> str:
        return f"/requests/{self.pk}/"


def log_in_as(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fill_request_form(
    page: Page,
    *,
    image_name: str,
    windows: str = "Windows 11",
    process: str = "BYOL_REGULAR_WSP",
    ami: str = WIN11_AMI,
    office: str = "No Office",
    description: str = "Finance desktop with the accounting suite",
    justification: str = "The finance team moves to WorkSpaces this quarter.",
    tags: tuple[tuple[str, str], ...] = (),
) -> None:
    page.get_by_label("AWS target").select_option(label=TARGET)
    page.get_by_label("Source AMI").fill(ami)
    page.get_by_label("Windows version").select_option(label=windows)
    page.get_by_label("Ingestion process").select_option(value=process)
    page.get_by_label("Microsoft Office").select_option(label=office)
    page.get_by_label("Image name").fill(image_name)
    page.get_by_label("Image description").fill(description)
    page.get_by_label("Justification").fill(justification)
    add_tags(page, tags)


def add_tags(page: Page, tags: tuple[tuple[str, str], ...]) -> None:
    """Fill the empty tag row, and press "Add a tag" for each further tag."""
    for number, (key, value) in enumerate(tags, start=1):
        if number > 1:
            page.get_by_role("button", name="Add a tag").click()
        page.get_by_label(f"Tag {number} key", exact=True).fill(key)
        page.get_by_label(f"Tag {number} value", exact=True).fill(value)


def submit_form(page: Page, button: str = "Submit for approval") -> Submitted:
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile(r"/requests/\d+/$"))
    return on_request_page(page)


def on_request_page(page: Page) -> Submitted:
    heading = page.get_by_role("heading", level=1).inner_text().split()
    pk = int(re.search(r"/requests/(\d+)/", page.url).group(1))
    return Submitted(reference=heading[0], pk=pk, image_name=heading[1])


def submit_request(page: Page, **fields: str) -> Submitted:
    """From any page: open the new-request form, fill it and submit it."""
    page.goto("/requests/new/")
    fill_request_form(page, **{"image_name": unique_name("img"), **fields})
    return submit_form(page)


def state_badge(page: Page) -> Locator:
    return page.locator("#request-state")


def preflight(page: Page) -> Locator:
    return page.locator("#preflight")


def wait_for_passing_checks(page: Page) -> None:
    """The request page reloads itself when the checks are done (static/js/request_live.js)."""
    expect(preflight(page)).to_contain_text("Nothing blocks the import.", timeout=CHECKS_TIMEOUT_MS)


def history(page: Page) -> Locator:
    return page.locator(".timeline-event")


def decide(page: Page, button: str, comment: str = "") -> None:
    """On a request page: write a comment and press one of the decision buttons."""
    if comment:
        page.get_by_label("Comment").fill(comment)
    page.get_by_role("button", name=button, exact=True).click()


def csrf_token(page: Page) -> str:
    return page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")


def post_action(page: Page, request: Submitted, action: str, version: int = 1, comment: str = "") -> tuple[int, str]:
    """POST an action the way the page's form would, with this window's session and CSRF token;
    return the status and body."""
    response = page.request.post(
        f"{request.path}{action}/",
        form={"csrfmiddlewaretoken": csrf_token(page), "version": str(version), "comment": comment},
        max_redirects=0,
    )
    return response.status, response.text()


def request_status(page: Page, request: Submitted) -> dict:
    response = page.request.get(f"{request.path}status/")
    assert response.ok, response.status
    return response.json()


def screenshot(page: Page, artifacts_dir: Path, name: str) -> None:
    page.wait_for_load_state()
    page.screenshot(path=artifacts_dir / "screenshots" / f"{name}.png", full_page=True)


def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's critical and serious violations on the page, one line each."""
    results = _axe.run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
        if violation["impact"] in SERIOUS
    ]


def unlabelled_controls(page: Page) -> list[str]:
    """Form controls a screen reader would announce without a name: no <label>, no aria label."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll("input, select, textarea"))
            .filter((el) => !["hidden", "submit", "button", "reset"].includes(el.type))
            .filter((el) => !el.closest("template"))
            .filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label")
                            && !el.getAttribute("aria-labelledby"))
            .map((el) => el.name || el.id || el.outerHTML.slice(0, 80))"""
    )


def assert_accessible(page: Page) -> None:
    assert serious_accessibility_violations(page) == []
    assert unlabelled_controls(page) == []


def has_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")


def tables_that_scroll_sideways(page: Page) -> list[str]:
    """Tables wider than their box: the page does not scroll, but part of the table is hidden."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll(".table-responsive"))
            .filter((box) => box.scrollWidth > box.clientWidth)
            .map((box) => box.querySelector("caption")?.textContent || box.outerHTML.slice(0, 80))"""
    )


def read_emails(mail_dir: Path) -> list[Message]:
    """Every email the portal wrote with Django's file-based backend (one file per connection,
    messages separated by a line of 79 dashes)."""
    messages = []
    for path in sorted(mail_dir.glob("*.log")):
        for chunk in path.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk))
    return messages


def wait_for_emails(mail_dir: Path, to: str, subject_contains: str, count: int, timeout: float = 15) -> list[Message]:
    """The emails to `to` whose subject contains the text, once there are `count` of them. They are
    sent after the change commits, so they may land a moment after the page answered."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in read_emails(mail_dir) if m["To"] == to and subject_contains in m["Subject"]]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)

"""The dashboard's charts draw in a real browser, from the portal's own files, within its
Content-Security-Policy."""

from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, expect

from browser_tests.conftest import LogIn
from browser_tests.steps import Submitted, log_in_as, screenshot, serious_accessibility_violations

CHARTS = ["chart-outcomes", "chart-durations", "chart-quota"]
# Collected before any of the page's own scripts run.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_dashboard_draws_its_charts_with_no_content_security_policy_violation(
    open_page: LogIn, checked_request: Submitted, artifacts_dir: Path, portal: Any
) -> None:
    page = open_page()
    page.context.add_init_script(RECORD_CSP_VIOLATIONS)
    errors: list[str] = []
    page.on("console", lambda message: _record_error(errors, message))
    outside: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(portal.url) else outside.append(request.url))
    log_in_as(page, "approver")

    page.goto("/")

    expect(page.get_by_role("heading", name="The last 12 weeks")).to_be_visible()
    for chart in CHARTS:
        expect(page.locator(f"#{chart}")).to_be_visible()
    drawn = page.evaluate(
        "(ids) => ids.map((id) => { const canvas = document.getElementById(id); const chart = Chart.getChart(canvas);"
        " return Boolean(chart) && canvas.width > 0 && chart.data.datasets.length > 0; })",
        CHARTS,
    )
    assert drawn == [True] * len(CHARTS)
    assert page.evaluate("window.cspViolations") == []
    assert errors == []
    assert outside == []
    assert serious_accessibility_violations(page) == []
    screenshot(page, artifacts_dir, "dashboard-charts")


def test_each_charts_numbers_are_in_a_table_a_screen_reader_can_reach(
    open_page: LogIn, checked_request: Submitted
) -> None:
    page = open_page()
    log_in_as(page, "auditor")
    page.goto("/")

    page.get_by_text("The numbers").first.click()

    table = page.get_by_role("table", name="Requests per week, by outcome")
    expect(table).to_be_visible()
    expect(table.get_by_role("columnheader", name="Still open")).to_be_visible()
    expect(table.get_by_role("row")).to_have_count(13)


def _record_error(errors: list[str], message: ConsoleMessage) -> None:
    if message.type == "error":
        errors.append(message.text)

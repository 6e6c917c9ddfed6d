"""An auditor asks for the audit export, the portal's own worker writes it, and the file that
comes down is complete: its last line counts its rows and names the chain head."""

import csv
import re
import time
from pathlib import Path

from playwright.sync_api import expect

from browser_tests.conftest import LogIn
from browser_tests.steps import Submitted

READY_WITHIN_SECONDS = 60


def test_an_auditor_downloads_a_complete_export_written_by_the_worker(
    log_in: LogIn, checked_request: Submitted, tmp_path: Path
) -> None:
    page = log_in("auditor")
    page.goto("/requests/")
    page.get_by_role("link", name="Export the audit history (CSV)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Export the audit history")

    page.get_by_label("Request").fill(checked_request.reference)
    page.get_by_role("button", name="Export").click()
    expect(page.get_by_role("status").first).to_contain_text("is queued")
    download_link = page.get_by_role("link", name=re.compile(r"^download"))
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while not download_link.count() and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        page.get_by_role("link", name="Refresh").click()

    with page.expect_download() as download_info:
        download_link.first.click()
    path = tmp_path / "export.csv"
    download_info.value.save_as(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = list(csv.reader(lines[:-1]))
    assert rows[0][:3] == ["seq", "request", "created_at"]
    assert {row[1] for row in rows[1:]} == {checked_request.reference}
    assert re.fullmatch(
        rf"# end: {len(rows) - 1} events matching request {checked_request.reference} \(filtered\), "
        r"up to #\d+, head [0-9a-f]{64}",
        lines[-1],
    )

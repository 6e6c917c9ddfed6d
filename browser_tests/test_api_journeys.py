"""The REST API as a program meets it: tokens made on the portal's page, a request filed and then
approved through the API while the portal's own worker runs the pre-flight checks, the docs page
under the strict CSP, and a revoked token refused."""

import time
from typing import Any

from playwright.sync_api import APIRequestContext, Page, expect

from browser_tests.conftest import LogIn
from browser_tests.steps import WIN10_AMI, assert_accessible, unique_name

API = "/api/v1"
CHECKS_WITHIN_SECONDS = 90


def make_token(page: Page, name: str) -> str:
    page.goto("/account/api-tokens/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Make a token").click()
    token = page.locator("#new-token").inner_text()
    expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
    assert_accessible(page)
    return token


def call(api: APIRequestContext, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    response = api.fetch(f"{API}{path}", method=method, headers={"Authorization": f"Bearer {token}"}, data=body)
    return response.status, response.json()


def wait_for_passing_checks(api: APIRequestContext, pk: int, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + CHECKS_WITHIN_SECONDS
    while time.monotonic() < deadline:
        _, request = call(api, "GET", f"/requests/{pk}/", token)
        if request["preflight"].get("version") == request["version"]:
            assert request["preflight"]["passed"], request["preflight"]
            return request
        time.sleep(1)
    raise AssertionError(f"the pre-flight checks of request {pk} did not finish in {CHECKS_WITHIN_SECONDS} s")


def test_a_program_files_a_request_an_approver_approves_it_and_a_revoked_token_stops(log_in: LogIn) -> None:
    requester, approver = log_in("requester"), log_in("approver")
    flow = unique_name("service-desk")
    filing, deciding = make_token(requester, flow), make_token(approver, unique_name("approvals"))
    api = requester.context.request

    _, targets = call(api, "GET", "/targets/", filing)
    target = next(t for t in targets["results"] if t["name"] == "Local AWS sandbox")
    status, filed = call(
        api,
        "POST",
        "/requests/",
        filing,
        {
            "target": target["id"],
            "windows_version": "10",
            "ec2_image_id": WIN10_AMI,
            "ingestion_process": "BYOL_REGULAR_WSP",
            "image_name": unique_name("api-win10"),
            "image_description": "Filed by the service desk flow",
            "justification": "The service desk files its images through the API.",
            "tags": [{"key": "Source", "value": "api"}],
        },
    )
    assert status == 201, filed
    checked = wait_for_passing_checks(api, filed["id"], filing)
    status, decided = call(
        api,
        "POST",
        f"/requests/{filed['id']}/decision/",
        deciding,
        {"decision": "approve", "expected_version": checked["version"], "comment": "Approved from the API."},
    )
    _, history = call(api, "GET", f"/requests/{filed['id']}/history/", filing)

    assert status == 200, decided
    assert decided["state"] in {"approved", "submitting", "importing"}
    approval = next(event for event in history["results"] if event["action"] == "approve")
    assert (approval["actor"], approval["comment"]) == ("approver", "Approved from the API.")

    requester.get_by_role("button", name=f"Revoke {flow}").click()
    expect(requester.get_by_role("status").first).to_contain_text("is revoked")
    status, refused = call(api, "GET", "/targets/", filing)
    assert status == 401
    assert refused["error"]["code"] == "authentication_failed"


def test_the_api_docs_render_from_the_portals_own_files_under_its_csp(log_in: LogIn) -> None:
    page = log_in("approver")
    complaints: list[str] = []
    page.on("console", lambda message: complaints.append(message.text) if message.type == "error" else None)

    page.goto(f"{API}/docs/")

    expect(page.get_by_text("/api/v1/requests/{id}/decision/")).to_be_visible()
    assert complaints == []

"""Single sign-on through a real OpenID Connect provider (django-oauth-toolkit, browser_tests/idp):
people sign in at the IdP and get the roles its groups give, anew at each log-in; with password
log-in off, only the break-glass admin signs in with a password, at /admin/ with a second factor."""

import re
from base64 import b32decode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django_otp.oath import totp
from playwright.sync_api import Browser, Page, expect

from browser_tests.conftest import DEFAULT_TIMEOUT_MS, DESKTOP, log_path
from browser_tests.idp_server import PASSWORD, Idp, running_idp
from browser_tests.portal import Portal, free_port, running_portal
from browser_tests.steps import assert_accessible, screenshot
from imports.accounts import MSG_LOCAL_LOG_IN_OFF
from imports.management.commands.seed_demo import DEMO_PASSWORD
from imports.oidc import MSG_NO_ROLE

SIGN_IN = "Sign in with Test IdP"


@dataclass(frozen=True)
class SsoPortal:
    portal: Portal
    idp: Idp


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[SsoPortal]:
    """The IdP, and a portal that signs people in through it only: password log-in off, the
    admin behind its second factor."""
    web_port = free_port()
    portal_url = f"http://127.0.0.1:{web_port}"
    with running_idp(tmp_path_factory.mktemp("idp"), log_path(artifacts_dir, "idp"), portal_url=portal_url) as idp:
        env = idp.portal_environment(portal_url) | {"PORTAL_PASSWORD_LOGIN": "false", "PORTAL_ADMIN_OTP": "true"}
        with running_portal(
            tmp_path_factory.mktemp("sso-portal"),
            log_path(artifacts_dir, "sso-portal"),
            web_port=web_port,
            extra_env=env,
        ) as portal:
            yield SsoPortal(portal=portal, idp=idp)


OpenPage = Callable[[], Page]


@pytest.fixture
def open_sso_page(
    browser: Browser, sso: SsoPortal, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[OpenPage]:
    """A new browser window (its own cookies, for the portal and the IdP) on the SSO portal."""
    pages: list[Page] = []

    def open_page() -> Page:
        context = browser.new_context(base_url=sso.portal.url, viewport={"width": DESKTOP, "height": 900})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        pages.append(context.new_page())
        return pages[-1]

    yield open_page
    report = getattr(request.node, "report_call", None)
    for number, page in enumerate(pages):
        if report is not None and report.failed and not page.is_closed():
            page.screenshot(path=artifacts_dir / "failures" / f"{request.node.name}-{number}.png", full_page=True)
        page.context.close()


def sign_in_through_the_idp(page: Page, sso: SsoPortal, username: str) -> None:
    """From the portal's log-in page to the IdP's, and back signed in."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name=SIGN_IN).click()
    expect(page).to_have_url(re.compile(f"^{re.escape(sso.idp.url)}/accounts/login/"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in to the IdP").click()


def expect_signed_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text(f"Signed in as {username}")


def can_file_requests(page: Page) -> bool:
    return page.request.get("/requests/new/", max_redirects=0).status == 200


def can_see_the_approvals_queue(page: Page) -> bool:
    return page.request.get("/approvals/", max_redirects=0).status == 200


def test_a_requester_signs_in_through_the_idp_and_can_file_a_request(
    sso: SsoPortal, open_sso_page: OpenPage, artifacts_dir: Path
) -> None:
    sso.idp.set_user("rita.sso", "it-desktop", "everyone")
    page = open_sso_page()
    page.goto("/accounts/login/")
    screenshot(page, artifacts_dir, "log-in-single-sign-on")
    assert_accessible(page)

    sign_in_through_the_idp(page, sso, "rita.sso")

    expect_signed_in(page, "rita.sso")
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="Approvals")).to_have_count(0)
    navigation.get_by_role("link", name="New request").click()
    expect(page.get_by_role("heading", name="New import request", level=1)).to_be_visible()
    assert not can_see_the_approvals_queue(page)


def test_an_approver_signs_in_through_the_idp_and_sees_the_approvals_queue(
    sso: SsoPortal, open_sso_page: OpenPage
) -> None:
    sso.idp.set_user("anna.sso", "byol-approvers")
    page = open_sso_page()

    sign_in_through_the_idp(page, sso, "anna.sso")

    expect_signed_in(page, "anna.sso")
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="New request")).to_have_count(0)
    navigation.get_by_role("link", name="Approvals").click()
    expect(page.get_by_role("heading", name="Approvals queue", level=1)).to_be_visible()
    assert not can_file_requests(page)


def test_groups_changed_at_the_idp_give_the_new_roles_at_the_next_log_in_and_take_the_old(
    sso: SsoPortal, open_sso_page: OpenPage
) -> None:
    sso.idp.set_user("carol.sso", "byol-requesters")
    page = open_sso_page()
    sign_in_through_the_idp(page, sso, "carol.sso")
    expect_signed_in(page, "carol.sso")
    assert can_file_requests(page)
    assert not can_see_the_approvals_queue(page)

    sso.idp.set_user("carol.sso", "byol-approvers")
    page.get_by_role("button", name="Log out").click()
    # Log-out ended the IdP's session too: signing in again asks for the IdP password.
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    sign_in_through_the_idp(page, sso, "carol.sso")

    expect_signed_in(page, "carol.sso")
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="Approvals")).to_be_visible()
    expect(navigation.get_by_role("link", name="New request")).to_have_count(0)
    assert can_see_the_approvals_queue(page)
    assert not can_file_requests(page)


def test_someone_whose_idp_groups_give_no_role_is_not_let_in(sso: SsoPortal, open_sso_page: OpenPage) -> None:
    sso.idp.set_user("olga.sso", "everyone")
    page = open_sso_page()

    sign_in_through_the_idp(page, sso, "olga.sso")

    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("alert")).to_have_text(MSG_NO_ROLE)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def admin_code(config_url: str) -> str:
    """The current code of the TOTP device whose otpauth:// URI add_totp_device printed."""
    secret = parse_qs(urlsplit(config_url).query)["secret"][0]
    key = b32decode(secret + "=" * (-len(secret) % 8))
    return f"{totp(key):06d}"


def test_with_password_log_in_off_only_the_break_glass_admin_signs_in_with_a_password_and_a_second_factor(
    sso: SsoPortal, open_sso_page: OpenPage
) -> None:
    page = open_sso_page()
    page.goto("/accounts/login/")
    expect(page.get_by_role("link", name=SIGN_IN)).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    expect(page.locator("main form")).to_have_count(0)

    page.goto("/admin/login/")
    token = page.locator("input[name=csrfmiddlewaretoken]").get_attribute("value")
    refused = page.request.post(
        "/accounts/login/",
        form={"csrfmiddlewaretoken": token, "username": "requester", "password": DEMO_PASSWORD},
        max_redirects=0,
    )
    assert refused.status == 403
    assert MSG_LOCAL_LOG_IN_OFF.format(provider="Test IdP") in refused.text()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    config_url = sso.portal.manage("add_totp_device", "admin", "--name", "break-glass phone").strip()
    page.goto("/admin/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_label("OTP Token").fill(admin_code(config_url))
    page.get_by_role("button", name="Log in").click()
    # django-otp asks which device the code came from, then for the code again.
    page.get_by_label("OTP Device").select_option(label="break-glass phone")
    page.get_by_label("OTP Token").fill(admin_code(config_url))
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

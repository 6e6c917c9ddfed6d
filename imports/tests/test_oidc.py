"""Single sign-on (imports/oidc.py, imports/accounts.py): who the IdP's claims make a person in the
portal, how its configuration is read, and which log-in doors are open. The round trip through a
real OIDC provider is in browser_tests/test_sso.py."""

import importlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.test import Client, RequestFactory, override_settings
from django.urls import NoReverseMatch, clear_url_caches, reverse

from imports import oidc, roles
from imports.accounts import MSG_LOCAL_LOG_IN_OFF
from imports.tests.conftest import PASSWORD, make_user
from imports.tests.test_settings import PRODUCTION_ENV, manage
from portal.settings import env_role_groups

IDP = "https://idp.example.com"
ROLE_GROUPS = {
    roles.REQUESTERS: ["byol-requesters", "it-desktop"],
    roles.APPROVERS: ["byol-approvers"],
    roles.AUDITORS: ["byol-auditors"],
}
SSO_SETTINGS = {
    "PORTAL_OIDC_ENABLED": True,
    "PORTAL_OIDC_PROVIDER_NAME": "Example IdP",
    "PORTAL_OIDC_ROLE_GROUPS": ROLE_GROUPS,
    "PORTAL_OIDC_END_SESSION_ENDPOINT": f"{IDP}/logout",
    "OIDC_RP_CLIENT_ID": "byol-portal",
    "OIDC_RP_CLIENT_SECRET": "client-secret",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{IDP}/authorize",
    "OIDC_OP_TOKEN_ENDPOINT": f"{IDP}/token",
    "OIDC_OP_JWKS_ENDPOINT": f"{IDP}/jwks",
    "OIDC_OP_USER_ENDPOINT": "",
    "OIDC_RP_SIGN_ALGO": "RS256",
    "OIDC_RP_SCOPES": "openid email profile",
    "OIDC_USE_PKCE": True,
    "OIDC_STORE_ID_TOKEN": True,
    "OIDC_OP_LOGOUT_URL_METHOD": "imports.oidc.provider_logout_url",
    "AUTHENTICATION_BACKENDS": [
        "axes.backends.AxesStandaloneBackend",
        "imports.oidc.PortalOIDCBackend",
        "imports.accounts.PasswordBackend",
    ],
}


def reload_urls() -> None:
    """The account URLs follow the settings at start-up: build them again for these settings."""
    clear_url_caches()
    importlib.reload(importlib.import_module(settings.ROOT_URLCONF))


@pytest.fixture
def sso(db: None) -> Iterator[None]:
    with override_settings(**SSO_SETTINGS):
        reload_urls()
        yield
    reload_urls()


@pytest.fixture
def sso_only(sso: None) -> Iterator[None]:
    with override_settings(PORTAL_PASSWORD_LOGIN=False):
        reload_urls()
        yield
    reload_urls()


@pytest.fixture
def backend(sso: None) -> oidc.PortalOIDCBackend:
    return oidc.PortalOIDCBackend()


def sign_in(backend: oidc.PortalOIDCBackend, **claims: Any) -> Any:
    """The callback's authenticate() with the IdP's answers stood in for at the network boundary:
    the token endpoint's, and the ID token's verified claims (no userinfo endpoint configured)."""
    claims = {"sub": "1234", "preferred_username": "carol", "email": "carol@example.com", **claims}
    backend.get_token = lambda payload: {"id_token": "id-token", "access_token": "access-token"}
    backend.verify_token = lambda token, **kwargs: claims
    request = RequestFactory().get("/oidc/callback/", {"code": "the-code", "state": "the-state"})
    request.session = {}
    return backend.authenticate(request, nonce="the-nonce", code_verifier="the-verifier")


def role_names(user: Any) -> set[str]:
    return set(user.groups.filter(name__in=roles.ROLE_PERMISSIONS).values_list("name", flat=True))


# The claim -> role mapping


def test_any_of_a_roles_groups_gives_the_role() -> None:
    claims = {"groups": ["it-desktop", "byol-auditors", "everyone"]}

    assert oidc.roles_from_claims(claims, groups_claim="groups", role_groups=ROLE_GROUPS) == {
        roles.REQUESTERS,
        roles.AUDITORS,
    }


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ("byol-approvers", {roles.APPROVERS}),  # a single group as a plain string
        (None, set()),
        ({"byol-approvers": True}, set()),
        ([["byol-approvers"], 42], set()),
        (["BYOL-APPROVERS"], set()),  # group names are compared exactly
    ],
)
def test_an_odd_group_claim_gives_only_what_it_names_exactly(claim: Any, expected: set[str]) -> None:
    assert oidc.roles_from_claims({"roles": claim}, groups_claim="roles", role_groups=ROLE_GROUPS) == expected


# Reading the configuration


def test_role_groups_are_read_with_several_groups_per_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLE_GROUPS", " Requesters = byol-requesters , it-desktop ;Approvers=byol-approvers; ")

    assert env_role_groups("ROLE_GROUPS") == {
        roles.REQUESTERS: ["byol-requesters", "it-desktop"],
        roles.APPROVERS: ["byol-approvers"],
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Requesters", "'Requesters' is not Role=idp-group"),
        ("Requesters=", "'Requesters=' is not Role=idp-group"),
        ("=byol-requesters", "is not Role=idp-group"),
        ("Admins=byol-admins", "there is no role 'Admins'; the roles are Requesters, Approvers, Auditors"),
        ("Approvers=a;Approvers=b", "Approvers is given twice"),
    ],
)
def test_bad_role_groups_are_refused_with_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("ROLE_GROUPS", value)

    with pytest.raises(ImproperlyConfigured, match="ROLE_GROUPS: ") as refused:
        env_role_groups("ROLE_GROUPS")

    assert message in str(refused.value)


START_UP_SSO_ENV = {
    "PORTAL_OIDC_ENABLED": "true",
    "PORTAL_OIDC_CLIENT_ID": "byol-portal",
    "PORTAL_OIDC_CLIENT_SECRET": "client-secret",
    "PORTAL_OIDC_AUTHORIZATION_ENDPOINT": f"{IDP}/authorize",
    "PORTAL_OIDC_TOKEN_ENDPOINT": f"{IDP}/token",
    "PORTAL_OIDC_JWKS_ENDPOINT": f"{IDP}/jwks",
    "PORTAL_OIDC_ROLE_GROUPS": "Requesters=byol-requesters",
}


def test_a_complete_single_sign_on_configuration_starts(tmp_path: Any) -> None:
    result = manage("check", env=START_UP_SSO_ENV, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"PORTAL_OIDC_ROLE_GROUPS": ""}, "PORTAL_OIDC_ROLE_GROUPS must map the IdP's groups to roles"),
        ({"PORTAL_OIDC_ROLE_GROUPS": "Admin=x"}, "PORTAL_OIDC_ROLE_GROUPS: there is no role 'Admin'"),
        ({"PORTAL_OIDC_CLIENT_ID": ""}, "PORTAL_OIDC_CLIENT_ID must be set when PORTAL_OIDC_ENABLED is on"),
        (
            {"PORTAL_OIDC_CLIENT_SECRET": ""},
            "PORTAL_OIDC_CLIENT_SECRET (or PORTAL_OIDC_CLIENT_SECRET_FILE) must be set",
        ),
        ({"PORTAL_OIDC_JWKS_ENDPOINT": ""}, "PORTAL_OIDC_JWKS_ENDPOINT must be set when PORTAL_OIDC_ENABLED is on"),
        ({"PORTAL_OIDC_TOKEN_ENDPOINT": "idp.example.com/token"}, "PORTAL_OIDC_TOKEN_ENDPOINT must be an https://"),
        ({"PORTAL_OIDC_ENABLED": "false", "PORTAL_PASSWORD_LOGIN": "false"}, "leaves no way to sign in"),
    ],
)
def test_a_bad_single_sign_on_configuration_stops_the_start_with_what_is_wrong(
    tmp_path: Any, changes: dict[str, str], message: str
) -> None:
    result = manage("check", env={**START_UP_SSO_ENV, **changes}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_the_client_secret_can_come_from_a_file(tmp_path: Any) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("from-a-docker-secret\n")
    env = {**START_UP_SSO_ENV, "PORTAL_OIDC_CLIENT_SECRET": "", "PORTAL_OIDC_CLIENT_SECRET_FILE": str(secret_file)}

    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.OIDC_RP_CLIENT_SECRET)",
        env=env,
        tmp_path=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "from-a-docker-secret"


def test_a_plain_http_idp_is_refused_when_debug_is_off(tmp_path: Any) -> None:
    env = {**PRODUCTION_ENV, **START_UP_SSO_ENV, "PORTAL_OIDC_AUTHORIZATION_ENDPOINT": "http://idp.example.com/a"}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "PORTAL_OIDC_AUTHORIZATION_ENDPOINT must be an https:// URL" in result.stderr


# The backend: who the claims make a person


def test_the_first_sign_in_creates_the_user_with_the_roles_of_their_groups(backend: Any) -> None:
    user = sign_in(backend, groups=["it-desktop", "everyone"], is_superuser=True, is_staff=True)

    assert user.username == "carol"
    assert user.email == "carol@example.com"
    assert role_names(user) == {roles.REQUESTERS}
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert not user.is_staff
    assert not user.is_superuser


def test_every_sign_in_sets_the_roles_anew_and_leaves_other_groups_alone(backend: Any) -> None:
    user = sign_in(backend, groups=["byol-requesters"])
    other = Group.objects.create(name="Newsletter")
    user.groups.add(other)

    again = sign_in(backend, groups=["byol-approvers", "byol-auditors"], email="carol@new.example.com")

    assert again.pk == user.pk
    assert role_names(again) == {roles.APPROVERS, roles.AUDITORS}
    assert other in again.groups.all()
    again.refresh_from_db()
    assert again.email == "carol@new.example.com"
    assert get_user_model().objects.filter(username="carol").count() == 1


def test_someone_whose_groups_give_no_role_is_not_created(backend: Any) -> None:
    user = sign_in(backend, groups=["everyone"])

    assert user is None
    assert not get_user_model().objects.filter(username="carol").exists()
    assert getattr(backend.request, oidc._REFUSAL) == oidc.MSG_NO_ROLE


def test_someone_removed_from_every_portal_group_loses_the_roles_and_is_refused(backend: Any) -> None:
    user = sign_in(backend, groups=["byol-approvers"])

    refused = sign_in(backend, groups=[])

    assert refused is None
    assert role_names(user) == set()


def test_the_username_comes_from_the_configured_claim(backend: Any, settings: Any) -> None:
    settings.PORTAL_OIDC_USERNAME_CLAIM = "upn"

    user = sign_in(backend, upn="carol.smith@corp.example.com", groups=["byol-auditors"])
    without = sign_in(backend, groups=["byol-auditors"], preferred_username="ignored")

    assert user.username == "carol.smith@corp.example.com"
    assert without is None


def test_the_groups_come_from_the_configured_claim(backend: Any, settings: Any) -> None:
    settings.PORTAL_OIDC_GROUPS_CLAIM = "roles"

    user = sign_in(backend, roles=["byol-approvers"], groups=["byol-requesters"])

    assert role_names(user) == {roles.APPROVERS}


@pytest.mark.parametrize("superuser", [False, True])
def test_a_local_account_is_never_taken_over_by_single_sign_on(backend: Any, superuser: bool) -> None:
    local = make_user("carol", groups=(roles.AUDITORS,), superuser=superuser)

    refused = sign_in(backend, groups=["byol-requesters", "byol-approvers"])

    assert refused is None
    assert role_names(local) == {roles.AUDITORS}
    assert getattr(backend.request, oidc._REFUSAL) == oidc.MSG_LOCAL_ACCOUNT


def test_a_deactivated_user_is_signed_out_at_the_next_click(backend: Any) -> None:
    user = sign_in(backend, groups=["byol-requesters"])
    user.is_active = False
    user.save()

    assert backend.get_user(user.pk) is None


# The log-in page and the account URLs


def test_the_log_in_page_offers_single_sign_on_beside_the_password_form(sso: None, client: Client) -> None:
    page = client.get(reverse("login") + "?next=/approvals/").content.decode()

    assert 'href="/oidc/authenticate/?next=/approvals/">Sign in with Example IdP</a>' in page
    assert 'name="password"' in page


def test_signing_in_goes_to_the_idp_with_pkce_and_a_state(sso: None, client: Client) -> None:
    response = client.get(reverse("oidc_authentication_init"))

    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    assert response.status_code == 302
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/authorize"
    assert query["client_id"] == ["byol-portal"]
    assert query["redirect_uri"] == ["http://testserver/oidc/callback/"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"][0] in client.session["oidc_states"]


def test_an_idp_that_says_no_sends_the_person_back_to_the_log_in_page_with_why(sso: None, client: Client) -> None:
    response = client.get(reverse("oidc_authentication_callback"), {"error": "access_denied"}, follow=True)

    assert response.redirect_chain == [(reverse("login"), 302)]
    assert oidc.MSG_SIGN_IN_FAILED in response.content.decode()


def test_with_password_log_in_off_the_log_in_page_has_no_password_form(sso_only: None, client: Client) -> None:
    page = client.get(reverse("login")).content.decode()

    assert "Sign in with Example IdP" in page
    assert "<form" not in page.split('id="main"')[1]
    assert 'name="password"' not in page


def test_with_password_log_in_off_a_posted_password_is_refused(sso_only: None, requester: Any) -> None:
    client = Client()

    response = client.post(reverse("login"), {"username": requester.username, "password": PASSWORD})

    assert response.status_code == 403
    assert MSG_LOCAL_LOG_IN_OFF.format(provider="Example IdP") in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_with_password_log_in_off_only_a_superuser_signs_in_at_the_admin(
    sso_only: None, superuser: Any, settings: Any
) -> None:
    settings.PORTAL_ADMIN_OTP = False
    staff = make_user("stella")
    staff.is_staff = True
    staff.save()
    admin_client, staff_client = Client(), Client()

    admin_client.post(reverse("admin:login"), {"username": superuser.username, "password": PASSWORD})
    staff_client.post(reverse("admin:login"), {"username": staff.username, "password": PASSWORD})

    assert admin_client.get(reverse("admin:index")).status_code == 200
    assert staff_client.get(reverse("admin:index")).status_code == 302
    assert "_auth_user_id" not in staff_client.session


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
    ],
)
def test_password_reset_does_not_exist_under_single_sign_on(sso: None, client: Client, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "rita@example.com"}).status_code == 404


def test_password_reset_does_not_exist_without_single_sign_on_either(client: Client, requester: Any) -> None:
    with pytest.raises(NoReverseMatch):
        reverse("password_reset")

    assert client.post("/accounts/password_reset/", {"email": "rita@example.com"}).status_code == 404


def test_password_change_is_not_routed_when_password_log_in_is_off(sso_only: None, client: Client) -> None:
    assert client.get("/accounts/password_change/").status_code == 404


def test_log_out_ends_the_idp_session_too(sso: None, client: Client, requester: Any) -> None:
    client.force_login(requester, backend="imports.oidc.PortalOIDCBackend")
    session = client.session
    session["oidc_id_token"] = "the-id-token"
    session.save()

    response = client.post(reverse("logout"))

    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/logout"
    assert parse_qs(location.query) == {
        "id_token_hint": ["the-id-token"],
        "client_id": ["byol-portal"],
        "post_logout_redirect_uri": ["http://testserver/accounts/login/"],
    }
    assert "_auth_user_id" not in client.session


def test_a_break_glass_password_session_logs_out_locally(sso: None, client: Client, superuser: Any) -> None:
    client.post(reverse("login"), {"username": superuser.username, "password": PASSWORD})

    response = client.post(reverse("logout"))

    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


@pytest.fixture
def rechecking(sso: None, settings: Any) -> None:
    """SessionRefresh where settings.py puts it when PORTAL_OIDC_RECHECK_MINUTES is set."""
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("imports.middleware.SessionLifetimeMiddleware") + 1,
        "mozilla_django_oidc.middleware.SessionRefresh",
    )
    settings.MIDDLEWARE = middleware


def expired_sso_session(client: Client, user: Any) -> None:
    client.force_login(user, backend="imports.oidc.PortalOIDCBackend")
    session = client.session
    session["oidc_id_token_expiration"] = 0
    session.save()


def test_an_expired_check_sends_the_next_page_through_the_idp_without_a_prompt(
    rechecking: None, client: Client, requester: Any
) -> None:
    expired_sso_session(client, requester)

    response = client.get(reverse("dashboard"))

    location = urlsplit(response["Location"])
    assert response.status_code == 302
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/authorize"
    assert parse_qs(location.query)["prompt"] == ["none"]


def test_the_status_polling_is_answered_without_a_detour_through_the_idp(
    rechecking: None, client: Client, requester: Any, make_request: Any
) -> None:
    request = make_request()
    expired_sso_session(client, requester)

    response = client.get(reverse("request_status", args=[request.pk]))

    assert response.status_code == 200
    assert response.json()["state"] == "submitted"


def test_a_break_glass_password_session_is_never_sent_to_the_idp(
    rechecking: None, client: Client, superuser: Any
) -> None:
    client.post(reverse("login"), {"username": superuser.username, "password": PASSWORD})

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200


@pytest.fixture
def idp_answers(sso: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The IdP's answers at the network boundary, for sign-ins through the real callback view:
    whatever code the browser brings, the token endpoint answers, and the ID token says `claims`."""
    claims: dict[str, Any] = {}
    monkeypatch.setattr(
        oidc.PortalOIDCBackend, "get_token", lambda self, payload: {"id_token": "t", "access_token": "a"}
    )
    monkeypatch.setattr(oidc.PortalOIDCBackend, "verify_token", lambda self, token, **kwargs: dict(claims))
    return claims


def sign_in_through_the_callback(address: str) -> Client:
    client = Client(REMOTE_ADDR=address)
    started = client.get(reverse("oidc_authentication_init"))
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    client.get(reverse("oidc_authentication_callback"), {"code": "the-code", "state": state})
    return client


def test_refused_single_sign_ons_lock_their_address_and_nobody_else(idp_answers: dict[str, Any], settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    idp_answers.update(preferred_username="olga", groups=["everyone"])
    for n in range(3):
        sign_in_through_the_callback(f"203.0.113.{n}")
        sign_in_through_the_callback("203.0.113.50")

    idp_answers.update(preferred_username="carol", groups=["byol-requesters"])
    elsewhere = sign_in_through_the_callback("198.51.100.9")
    locked = sign_in_through_the_callback("203.0.113.50")

    assert elsewhere.session["_auth_user_id"] == str(get_user_model().objects.get(username="carol").pk)
    assert "_auth_user_id" not in locked.session


def test_a_callback_this_browser_did_not_start_is_a_failed_sign_in_not_an_error_page(
    idp_answers: dict[str, Any], client: Client
) -> None:
    client.get(reverse("oidc_authentication_init"))

    response = client.get(reverse("oidc_authentication_callback"), {"code": "c", "state": "forged"}, follow=True)

    assert response.redirect_chain == [(reverse("login"), 302)]
    assert oidc.MSG_SIGN_IN_FAILED in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "failure",
    [requests.HTTPError("400 invalid_grant"), requests.ConnectionError("IdP down"), SuspiciousOperation("bad JWS")],
)
def test_an_idp_that_refuses_the_code_or_does_not_answer_is_a_failed_sign_in(
    idp_answers: dict[str, Any], monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def token_endpoint(self: Any, payload: Any) -> Any:
        raise failure

    monkeypatch.setattr(oidc.PortalOIDCBackend, "get_token", token_endpoint)

    client = sign_in_through_the_callback("198.51.100.7")
    page = client.get(reverse("login"))

    assert oidc.MSG_SIGN_IN_FAILED in page.content.decode()
    assert "_auth_user_id" not in client.session

"""Single sign-on with OpenID Connect: people come from the organisation's identity provider (IdP),
and their roles from its group claim, at every log-in.

mozilla-django-oidc runs the authorization code flow (with PKCE) and verifies the ID token;
this module decides who that is in the portal. https://mozilla-django-oidc.readthedocs.io/
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from imports import roles
from imports.permissions import PermissionsInOneQuery

logger = logging.getLogger(__name__)

MSG_SIGN_IN_FAILED = "Single sign-on did not sign you in. Try again; if it keeps failing, ask your service desk."
MSG_NO_ROLE = (
    "Your account has no role in the BYOL portal. Ask to be added to one of the portal's groups "
    "at your identity provider, then sign in again."
)
MSG_LOCAL_ACCOUNT = (
    "Your user name belongs to a local account of the portal, which single sign-on does not take "
    "over. Ask a portal admin to sort it out."
)
# Where the backend leaves why it refused someone, for the callback view to tell them.
_REFUSAL = "_portal_sign_in_refusal"


class SignInRefused(SuspiciousOperation):
    """The IdP vouched for this person, but the portal does not let them in (mozilla-django-oidc
    turns a SuspiciousOperation from user lookup into a refused log-in)."""


def roles_from_claims(
    claims: Mapping[str, Any], *, groups_claim: str, role_groups: Mapping[str, Sequence[str]]
) -> frozenset[str]:
    """The portal roles that the IdP groups named in the claims give. A claim that is missing or
    not a list of names gives none (a single name counts as a list of one)."""
    value = claims.get(groups_claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    idp_groups = {item for item in value if isinstance(item, str)}
    return frozenset(role for role, names in role_groups.items() if idp_groups.intersection(names))


def sync_roles(user: Any, portal_roles: frozenset[str]) -> None:
    """Make the user's role groups exactly `portal_roles`; other groups stay as they are."""
    current = set(user.groups.filter(name__in=roles.ROLE_PERMISSIONS).values_list("name", flat=True))
    added, removed = portal_roles - current, current - portal_roles
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    if added:
        user.groups.add(*Group.objects.filter(name__in=added))
    if added or removed:
        logger.info(
            "Roles of %s from the IdP: %s (added: %s; removed: %s)",
            user.get_username(),
            ", ".join(sorted(portal_roles)) or "none",
            ", ".join(sorted(added)) or "none",
            ", ".join(sorted(removed)) or "none",
        )
    user.__dict__.pop("_portal_roles", None)


class PortalOIDCBackend(PermissionsInOneQuery, OIDCAuthenticationBackend):
    """Signs in the person the IdP vouched for: the user named by PORTAL_OIDC_USERNAME_CLAIM,
    created at their first log-in with an unusable password, their role groups set from the
    group claim at every log-in. Never a superuser, nor an account that signs in with a password:
    those stay local (the break-glass admin), whatever the IdP says."""

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        # The verified ID token's claims, completed by the userinfo endpoint where there is one.
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            claims.update(super().get_userinfo(access_token, id_token, payload))
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(self._username(claims))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(**{self.UserModel.USERNAME_FIELD: self._username(claims)})

    def create_user(self, claims: dict[str, Any]) -> Any:
        portal_roles = self._roles(claims)
        if not portal_roles:
            self._refuse(MSG_NO_ROLE, f"{self._username(claims)} has no portal role at the IdP; not created")
        with transaction.atomic():
            user = self.UserModel.objects.create_user(self._username(claims), email=claims.get("email") or "")
            sync_roles(user, portal_roles)
        logger.info("Created %s at their first single sign-on", user.get_username())
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        if user.is_superuser or user.has_usable_password():
            self._refuse(MSG_LOCAL_ACCOUNT, f"{user.get_username()} is a local account; single sign-on refused")
        portal_roles = self._roles(claims)
        with transaction.atomic():
            email = claims.get("email") or ""
            if email and email != user.email:
                user.email = email
                user.save(update_fields=["email"])
            sync_roles(user, portal_roles)
        if not portal_roles:
            self._refuse(MSG_NO_ROLE, f"{user.get_username()} has no portal role at the IdP any more")
        return user

    def get_user(self, user_id: int) -> Any:
        # A user deactivated in the admin is signed out at their next click.
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def _username(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(settings.PORTAL_OIDC_USERNAME_CLAIM)
        return value.strip() if isinstance(value, str) else ""

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        return roles_from_claims(
            claims, groups_claim=settings.PORTAL_OIDC_GROUPS_CLAIM, role_groups=settings.PORTAL_OIDC_ROLE_GROUPS
        )

    def _refuse(self, message: str, reason: str) -> NoReturn:
        logger.warning("Single sign-on refused: %s", reason)
        setattr(self.request, _REFUSAL, message)
        raise SignInRefused(reason)


class PortalCallbackView(OIDCAuthenticationCallbackView):
    """Where the IdP sends people back; a refused or failed sign-in says why on the log-in page."""

    @property
    def failure_url(self) -> str:
        return resolve_url(settings.LOGIN_URL)

    def get(self, request: HttpRequest) -> HttpResponse:
        # mozilla-django-oidc lets these through as a 400 or a 500: a state this browser did not
        # start (a reloaded or replayed callback), a code the IdP no longer takes, an ID token
        # that fails its checks, an IdP that does not answer. Each is a failed sign-in.
        try:
            return super().get(request)
        except (SuspiciousOperation, requests.RequestException) as exc:
            logger.warning("Single sign-on failed at the callback: %s", exc)
            return self.login_failure()

    def login_failure(self) -> HttpResponse:
        messages.error(self.request, getattr(self.request, _REFUSAL, MSG_SIGN_IN_FAILED))
        return super().login_failure()


def provider_logout_url(request: HttpRequest) -> str:
    """Where log-out sends the browser (OIDC_OP_LOGOUT_URL_METHOD): the IdP's end-session endpoint,
    so that its session ends too, and from there back to the log-in page. A break-glass admin's
    password session has nothing to end at the IdP.
    https://openid.net/specs/openid-connect-rpinitiated-1_0.html"""
    id_token = request.session.get("oidc_id_token")
    if not id_token:
        return resolve_url(settings.LOGOUT_REDIRECT_URL)
    query = urlencode(
        {
            "id_token_hint": id_token,
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL)),
        }
    )
    return f"{settings.PORTAL_OIDC_END_SESSION_ENDPOINT}?{query}"

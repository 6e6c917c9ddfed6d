"""Signing in and out: the log-in page (a password form, single sign-on, or both), the password
back end, and the only account URLs the portal routes.

People's accounts are managed centrally (at the IdP, or by an admin in the admin), so there is
no self-service password reset: its URLs do not exist.
"""

from typing import Any

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from mozilla_django_oidc.views import OIDCAuthenticationRequestView, OIDCLogoutView

from imports import compiled
from imports.oidc import PortalCallbackView
from imports.permissions import PermissionsInOneQuery

MSG_LOCAL_LOG_IN_OFF = "Password log-in is switched off: sign in with {provider}."


def lockout_parameters(request_or_attempt: HttpRequest | Any, credentials: dict[str, Any] | None = None) -> list[str]:
    """What django-axes counts failed log-ins by (AXES_LOCKOUT_PARAMETERS): the user name and,
    separately, the address. A single sign-on names no user to axes: counted under "no user
    name", its failures would add up across everyone and lock every single sign-on at once, so
    it counts per address only. https://django-axes.readthedocs.io/en/latest/4_configuration.html"""
    if isinstance(request_or_attempt, HttpRequest):
        username = get_client_username(request_or_attempt, credentials)
    else:  # an AccessAttempt axes already recorded
        username = request_or_attempt.username
    return ["username", "ip_address"] if username else ["ip_address"]


class PasswordBackend(PermissionsInOneQuery):
    """Django's user name and password log-in. With PORTAL_PASSWORD_LOGIN off only a superuser
    passes (the break-glass admin, at the admin's log-in with its second factor), and other
    password sessions end."""

    def user_can_authenticate(self, user: Any) -> bool:
        return super().user_can_authenticate(user) and (settings.PORTAL_PASSWORD_LOGIN or user.is_superuser)

    def get_user(self, user_id: int) -> Any:
        # As ModelBackend's, with the user read by SQL compiled once per process (imports.compiled).
        try:
            user = compiled.user(user_id)
        except get_user_model().DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None


class PortalLoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            sso_enabled=settings.PORTAL_OIDC_ENABLED,
            sso_provider=settings.PORTAL_OIDC_PROVIDER_NAME,
            password_login=settings.PORTAL_PASSWORD_LOGIN,
            **kwargs,
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PORTAL_PASSWORD_LOGIN:
            refused = MSG_LOCAL_LOG_IN_OFF.format(provider=settings.PORTAL_OIDC_PROVIDER_NAME)
            return self.render_to_response(self.get_context_data(refused=refused), status=403)
        return super().post(request, *args, **kwargs)


def sign_in_urlpatterns() -> list[URLPattern | URLResolver]:
    """accounts/: log-in, log-out and (with password log-in) password change; oidc/: the single
    sign-on round trip, when it is on. Read once at start-up, like the settings they follow."""
    sso = settings.PORTAL_OIDC_ENABLED
    accounts: list[URLPattern | URLResolver] = [
        path("login/", PortalLoginView.as_view(), name="login"),
        # With single sign-on, log-out ends the IdP's session too (imports.oidc.provider_logout_url).
        path("logout/", (OIDCLogoutView if sso else auth_views.LogoutView).as_view(), name="logout"),
    ]
    if settings.PORTAL_PASSWORD_LOGIN:
        accounts += [
            path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
            path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
        ]
    patterns: list[URLPattern | URLResolver] = [path("accounts/", include(accounts))]
    if sso:
        # Names that mozilla-django-oidc reverses; open to anonymous visitors, who are signing in.
        oidc = [
            path(
                "authenticate/",
                login_not_required(OIDCAuthenticationRequestView.as_view()),
                name="oidc_authentication_init",
            ),
            path("callback/", login_not_required(PortalCallbackView.as_view()), name="oidc_authentication_callback"),
            # The same as accounts/logout/, under the name SessionRefresh leaves out of its re-check.
            path("logout/", OIDCLogoutView.as_view(), name="oidc_logout"),
        ]
        patterns.append(path("oidc/", include(oidc)))
    return patterns

"""The Django admin, behind a second factor (django-otp) when PORTAL_ADMIN_OTP is on.

The admin is where targets (and so IAM role ARNs into production accounts) and people are
managed, and with single sign-on it is the break-glass way in: a password alone must not open it.
https://django-otp-official.readthedocs.io/en/stable/overview.html#admin-site
"""

from django.conf import settings
from django.contrib.admin.sites import AdminSite
from django.http import HttpRequest
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class PortalAdminSite(OTPAdminSite):
    """OTPAdminSite when PORTAL_ADMIN_OTP is on (a session verified by a TOTP or backup token,
    and a log-in form that asks for one), Django's plain admin site when it is off. Read per
    request, so that tests can switch it."""

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    @property
    def login_form(self) -> type | None:  # type: ignore[override]
        return OTPAdminAuthenticationForm if settings.PORTAL_ADMIN_OTP else None

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return OTPAdminSite.login_template if settings.PORTAL_ADMIN_OTP else None

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.PORTAL_ADMIN_OTP:
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)

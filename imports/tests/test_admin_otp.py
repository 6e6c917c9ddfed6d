"""The admin's second factor (django-otp): with PORTAL_ADMIN_OTP on, a password opens no admin page."""

from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.lib import add_static_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from imports.tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _otp_on(settings: Any) -> None:
    settings.PORTAL_ADMIN_OTP = True


def current_code(device: TOTPDevice) -> str:
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
    return f"{code:0{device.digits}d}"


def admin_log_in(client: Client, username: str, password: str, token: str = "", device: Any = None) -> Any:
    """The admin's log-in form as a person fills it in its second round: with the device chosen."""
    fields = {"username": username, "password": password, "otp_token": token, "next": reverse("admin:index")}
    if device is not None:
        fields["otp_device"] = device.persistent_id
    return client.post(reverse("admin:login"), fields)


def test_a_password_only_session_is_sent_to_the_admin_log_in(client: Client, superuser: Any) -> None:
    TOTPDevice.objects.create(user=superuser, name="phone")
    client.post(reverse("login"), {"username": superuser.username, "password": PASSWORD})

    response = client.get(reverse("admin:imports_awstarget_changelist"))

    assert client.session["_auth_user_id"] == str(superuser.pk)  # signed in to the portal itself
    assert response.status_code == 302
    assert urlparse(response["Location"]).path == reverse("admin:login")


def test_the_admin_log_in_refuses_the_right_password_without_a_token(client: Client, superuser: Any) -> None:
    TOTPDevice.objects.create(user=superuser, name="phone")

    response = admin_log_in(client, superuser.username, PASSWORD)

    assert response.status_code == 200
    assert "Please enter your OTP token" in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_the_admin_log_in_refuses_a_wrong_token(client: Client, superuser: Any) -> None:
    device = TOTPDevice.objects.create(user=superuser, name="phone")
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"

    response = admin_log_in(client, superuser.username, PASSWORD, wrong, device)

    assert response.status_code == 200
    assert "Invalid token" in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_the_admin_opens_after_the_password_and_a_valid_totp_code(client: Client, superuser: Any) -> None:
    device = TOTPDevice.objects.create(user=superuser, name="phone")

    response = admin_log_in(client, superuser.username, PASSWORD, current_code(device), device)
    page = client.get(reverse("admin:imports_awstarget_changelist"))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert page.status_code == 200
    device.refresh_from_db()
    assert device.last_used_at is not None


def test_a_backup_token_opens_the_admin_once(superuser: Any) -> None:
    token = add_static_token(superuser.username)

    first, second = Client(), Client()
    admin_log_in(first, superuser.username, PASSWORD, token.token, token.device)
    admin_log_in(second, superuser.username, PASSWORD, token.token, token.device)

    assert first.get(reverse("admin:index")).status_code == 200
    assert second.get(reverse("admin:index")).status_code == 302


def test_with_the_second_factor_off_a_password_opens_the_admin(client: Client, superuser: Any, settings: Any) -> None:
    settings.PORTAL_ADMIN_OTP = False

    admin_log_in(client, superuser.username, PASSWORD)

    assert client.get(reverse("admin:index")).status_code == 200


def test_add_totp_device_prints_a_uri_whose_codes_the_admin_accepts(client: Client, superuser: Any) -> None:
    out = StringIO()

    call_command("add_totp_device", superuser.username, "--name", "break-glass phone", stdout=out)

    uri = urlparse(out.getvalue().strip())
    assert uri.scheme == "otpauth"
    assert parse_qs(uri.query)["issuer"] == ["BYOL image portal"]
    device = TOTPDevice.objects.get(user=superuser)
    assert device.name == "break-glass phone"
    assert device.confirmed
    admin_log_in(client, superuser.username, PASSWORD, current_code(device), device)
    assert client.get(reverse("admin:index")).status_code == 200


def test_add_totp_device_refuses_a_user_who_is_not_staff(requester: Any) -> None:
    with pytest.raises(CommandError, match="is not staff"):
        call_command("add_totp_device", requester.username)

    assert not TOTPDevice.objects.exists()


def test_a_totp_code_is_not_accepted_twice(superuser: Any) -> None:
    device = TOTPDevice.objects.create(user=superuser, name="phone")
    code = current_code(device)
    first, second = Client(), Client()

    admin_log_in(first, superuser.username, PASSWORD, code, device)
    admin_log_in(second, superuser.username, PASSWORD, code, device)

    assert first.get(reverse("admin:index")).status_code == 200
    assert second.get(reverse("admin:index")).status_code == 302

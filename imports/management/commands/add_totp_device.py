"""Give an admin a TOTP device for the admin's second factor, from the server's shell.

The first admin has no verified session to add a device in the admin with: this command (or
django-otp's `addstatictoken` for a one-time backup token) is how they get one.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Add a TOTP device to a user for the admin's second factor and print its otpauth:// URI: "
        "open it in (or type its secret into) an authenticator app."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username", help="the user the device belongs to")
        parser.add_argument("--name", default="authenticator app", help="what the device is called in the admin")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"There is no user {options['username']!r}.") from exc
        if not user.is_staff:
            raise CommandError(f"{user.get_username()} is not staff: only admins need a device for the admin.")
        device = TOTPDevice.objects.create(user=user, name=options["name"], confirmed=True)
        self.stdout.write(device.config_url)

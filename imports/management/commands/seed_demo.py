"""Demo users for each role, an admin and one AWS target pointing at the local sandbox."""

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from imports import dispatch, roles
from imports.models import AwsTarget

DEMO_PASSWORD = "demo-portal-2026"  # noqa: S105 -- published on purpose: demo users only, DEBUG only
DEMO_USERS = [
    # username, groups, is_superuser
    ("requester", [roles.REQUESTERS], False),
    ("requester2", [roles.REQUESTERS], False),
    ("approver", [roles.APPROVERS], False),
    ("approver2", [roles.APPROVERS], False),
    ("auditor", [roles.AUDITORS], False),
    ("admin", [], True),
]
SANDBOX_ACCOUNT = "123456789012"


class Command(BaseCommand):
    help = "Create the demo users and the sandbox target (idempotent). Refuses to run with DJANGO_DEBUG off."

    def add_arguments(self, parser: Any) -> None:
        # The Procfile starts the sandbox on SANDBOX_PORT (default 5055): point the target there.
        # (Not imported from sandbox, which needs moto: the production image lacks it.)
        port = os.environ.get("SANDBOX_PORT") or "5055"
        parser.add_argument(
            "--sandbox-url", default=f"http://127.0.0.1:{port}", help="endpoint of the local AWS sandbox"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo users have a published password: seed_demo runs only with DJANGO_DEBUG on")
        user_model = get_user_model()
        for username, group_names, is_superuser in DEMO_USERS:
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@example.com", "is_staff": is_superuser, "is_superuser": is_superuser},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(*Group.objects.filter(name__in=group_names))
        target, _ = AwsTarget.objects.update_or_create(
            name="Local AWS sandbox",
            defaults={
                "account_id": SANDBOX_ACCOUNT,
                "region": "us-east-1",
                "endpoint_url": options["sandbox_url"],
                "byop_allowed": True,
                "is_active": True,
            },
        )
        # The worker lists the sandbox's AMIs for the request form once it runs.
        dispatch.publish("refresh_ami_offers", (target.pk,))
        self.stdout.write(f"Demo log-ins (password for all: {DEMO_PASSWORD}):")
        for username, group_names, is_superuser in DEMO_USERS:
            role = "admin (superuser)" if is_superuser else ", ".join(group_names)
            self.stdout.write(f"  {username:<11} {role}")

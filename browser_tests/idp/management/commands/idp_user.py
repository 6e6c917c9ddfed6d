from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a user at the IdP, or change one, and make their groups exactly those given."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--groups", nargs="*", default=[])

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = User.objects.get_or_create(
            username=options["username"], defaults={"email": f"{options['username']}@corp.example.com"}
        )
        user.set_password(options["password"])
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in options["groups"]])

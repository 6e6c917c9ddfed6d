from typing import Any

from django.core.management.base import BaseCommand
from oauth2_provider.models import Application


class Command(BaseCommand):
    help = "Register (or update) the portal as a confidential OIDC client, signing ID tokens with RS256."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("client_id")
        parser.add_argument("client_secret")
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--post-logout-redirect-uri", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        application = Application.objects.filter(client_id=options["client_id"]).first() or Application(
            client_id=options["client_id"]
        )
        application.name = "BYOL portal"
        application.client_secret = options["client_secret"]  # hashed when saved
        application.client_type = Application.CLIENT_CONFIDENTIAL
        application.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        application.algorithm = Application.RS256_ALGORITHM
        application.redirect_uris = options["redirect_uri"]
        application.post_logout_redirect_uris = options["post_logout_redirect_uri"]
        application.skip_authorization = True  # a corporate IdP does not ask for consent either
        application.save()

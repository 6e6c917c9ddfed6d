from django.db import models
from knox.models import AbstractAuthToken


class ApiToken(AbstractAuthToken):
    """A person's API token (django-rest-knox): only its SHA-512 digest and its first characters
    (`token_key`, to find the row) are stored; the token itself is shown once, when it is made.
    It acts as its owner, with exactly the owner's roles at each call, until it expires or is
    revoked (deleted)."""

    name = models.CharField(max_length=100)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="api_token_name_per_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

"""Which endpoint URLs an AWS target may point at.

A target's endpoint receives the portal's signed AWS requests, session tokens and AssumeRole's
external id included, so it must not be turnable against the portal's own network (the
instance metadata service, an internal host): only https, no user info in the URL, and a host
that is AWS's or one the operators listed (a VPC endpoint, say). Plain http, and local hosts
such as the AWS sandbox, only where the settings allow them (development, by default).
https://docs.aws.amazon.com/general/latest/gr/rande.html
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# The domains of AWS's public, China and dual-stack service endpoints.
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")

MSG_NOT_A_URL = "Enter the endpoint as a full URL, such as https://workspaces.eu-west-1.amazonaws.com."
MSG_SCHEME = "The endpoint must use https."
MSG_USERINFO = "The endpoint must not carry a user name or password."
MSG_HOST = (
    "The endpoint's host {host} is not an AWS endpoint. Leave the field empty for AWS's own endpoints, "
    "or ask the operators to allow this host (PORTAL_ENDPOINT_HOSTS), for a VPC endpoint say."
)


def endpoint_problem(url: str) -> str:
    """What is wrong with `url` as a target's endpoint, or "" when nothing is."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return MSG_NOT_A_URL
    if not host or parts.scheme not in ("https", "http"):
        return MSG_NOT_A_URL
    if parts.username is not None or parts.password is not None:
        return MSG_USERINFO
    if parts.scheme == "http" and not settings.PORTAL_ALLOW_HTTP_ENDPOINTS:
        return MSG_SCHEME
    if not _allowed_host(host):
        return MSG_HOST.format(host=host)
    return ""


def _allowed_host(host: str) -> bool:
    listed = [entry.lower() for entry in settings.PORTAL_ENDPOINT_HOSTS]
    if host in listed:
        return True
    suffixes = (*AWS_HOST_SUFFIXES, *(entry for entry in listed if entry.startswith(".")))
    return host.endswith(suffixes)


def validate_endpoint_url(value: str) -> None:
    problem = endpoint_problem(value)
    if problem:
        raise ValidationError(problem, code="endpoint_not_allowed")

"""Which endpoint URLs an AWS target may point at.

A target's endpoint receives the portal's signed AWS requests, session tokens and AssumeRole's
external id included, so it must not be turnable against the portal's own network (the
instance metadata service, an internal host): only https, no user info in the URL, and a host
that is AWS's or one the operators listed (a VPC endpoint, say). Plain http, and local hosts
such as the AWS sandbox, only where the settings allow them (development, by default).
https://docs.aws.amazon.com/general/latest/gr/rande.html
"""

import ipaddress
import socket
from collections.abc import Callable
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
    problem, host, _port = _outbound_problem(url, not_a_url=MSG_NOT_A_URL, scheme=MSG_SCHEME)
    if problem:
        return problem
    if not _allowed_host(host):
        return MSG_HOST.format(host=host)
    return ""


def _outbound_problem(url: str, *, not_a_url: str, scheme: str) -> tuple[str, str, int]:
    """The rules every URL the portal sends to follows: (what is wrong or "", host, port)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return not_a_url, "", 0
    if not host or parts.scheme not in ("https", "http"):
        return not_a_url, host, port
    if parts.username is not None or parts.password is not None:
        return MSG_USERINFO, host, port
    if parts.scheme == "http" and not settings.PORTAL_ALLOW_HTTP_ENDPOINTS:
        return scheme, host, port
    return "", host, port


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


# --- webhook destinations ---------------------------------------------------------------------
# A webhook's URL is named by a person, and the worker posts to it from inside the portal's
# network: the same rules as an endpoint's (https, no user info), and every address its host
# resolves to must be public, checked when the subscription is saved and again before each
# attempt (DNS may have changed since), the connection made to the address that was checked.

MSG_WEBHOOK_NOT_A_URL = "Enter the receiver as a full URL, such as https://hooks.slack.com/services/...."
MSG_WEBHOOK_SCHEME = "The receiver's URL must use https."
MSG_WEBHOOK_HOST = (
    "The receiver's host {host} is not allowed here. Ask the operators to allow it (PORTAL_WEBHOOK_HOSTS)."
)
MSG_WEBHOOK_UNRESOLVED = "The receiver's host {host} could not be found. Check the URL's spelling."
MSG_WEBHOOK_PRIVATE = (
    "The receiver's host {host} is an address inside a private network ({address}); webhooks go only to "
    "public addresses."
)


def webhook_problem(url: str, *, resolve: Callable[[str, int], list[str]] | None = None) -> str:
    """What is wrong with `url` as a webhook's receiver, or "" when nothing is."""
    problem, host, port = _outbound_problem(url, not_a_url=MSG_WEBHOOK_NOT_A_URL, scheme=MSG_WEBHOOK_SCHEME)
    if problem:
        return problem
    listed = [entry.lower() for entry in settings.PORTAL_WEBHOOK_HOSTS]
    if listed and host not in listed and not host.endswith(tuple(e for e in listed if e.startswith("."))):
        return MSG_WEBHOOK_HOST.format(host=host)
    try:
        addresses = (resolve or resolve_host)(host, port)
    except OSError:
        return MSG_WEBHOOK_UNRESOLVED.format(host=host)
    for address in addresses:
        if not _public(address) and not settings.PORTAL_WEBHOOK_ALLOW_PRIVATE:
            return MSG_WEBHOOK_PRIVATE.format(host=host, address=address)
    return ""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (raises OSError when it resolves to none)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return addresses


def _public(address: str) -> bool:
    # is_global is False for private, loopback, link-local (the metadata service), shared
    # (100.64/10), reserved and unspecified addresses; an IPv4-mapped IPv6 address counts as IPv4.
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_webhook_url(value: str) -> None:
    problem = webhook_problem(value)
    if problem:
        raise ValidationError(problem, code="webhook_not_allowed")

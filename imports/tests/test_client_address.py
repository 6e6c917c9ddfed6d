"""Which address log-in throttling counts: the connection's, or, behind trusted proxies, the
client's as the nearest proxy recorded it."""

from typing import Any

from axes.helpers import get_client_ip_address
from django.test import RequestFactory

# What portal/settings.py sets for PORTAL_TRUSTED_PROXY_COUNT=1.
BEHIND_ONE_PROXY = {
    "AXES_IPWARE_PROXY_COUNT": 0,
    "AXES_IPWARE_PROXY_ORDER": "left-most",
    "AXES_IPWARE_META_PRECEDENCE_ORDER": ("HTTP_X_FORWARDED_FOR",),
    "IPWARE_STRICT": False,
}


def request_from(remote: str, forwarded: str = "") -> Any:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().get("/accounts/login/", REMOTE_ADDR=remote, **extra)


def test_without_proxies_the_connections_address_counts_and_a_forwarded_header_is_ignored() -> None:
    assert get_client_ip_address(request_from("198.51.100.7", forwarded="203.0.113.9")) == "198.51.100.7"


def test_behind_one_proxy_the_address_it_appended_counts_not_one_a_client_forged(settings: Any) -> None:
    for name, value in BEHIND_ONE_PROXY.items():
        setattr(settings, name, value)

    # The client sent "X-Forwarded-For: 192.0.2.1"; the proxy appended the address it saw.
    forged_then_real = request_from("172.18.0.2", forwarded="192.0.2.1, 203.0.113.9")

    assert get_client_ip_address(forged_then_real) == "203.0.113.9"
    assert get_client_ip_address(request_from("172.18.0.2", forwarded="198.51.100.20")) == "198.51.100.20"


def test_the_settings_turn_it_on_from_the_environment(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = os.environ | {"PORTAL_TRUSTED_PROXY_COUNT": "1", "PORTAL_VAR_DIR": str(tmp_path)}
    code = "import portal.settings as s; print(s.AXES_IPWARE_PROXY_COUNT, s.AXES_IPWARE_PROXY_ORDER, s.IPWARE_STRICT)"
    done = subprocess.run(  # noqa: S603 -- our own interpreter and code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )

    assert done.stdout.split() == ["0", "left-most", "False"]

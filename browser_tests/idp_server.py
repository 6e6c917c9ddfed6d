"""Start the test OpenID Connect provider (browser_tests/idp) on a free port, and stop it.

Its own Django project and SQLite database in a throwaway folder, an RSA key generated here,
the portal registered as a confidential RS256 client, and users whose groups the tests set.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from browser_tests.portal import PROJECT_DIR, STOP_SECONDS, _wait_until_up, free_port

CLIENT_ID = "byol-portal"
CLIENT_SECRET = "test-idp-client-secret"  # noqa: S105 -- the throwaway IdP's only client
PASSWORD = "idp-password-2026"  # noqa: S105 -- the throwaway IdP's test users


@dataclass(frozen=True)
class Idp:
    url: str
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        """Run a manage.py command of the IdP project (idp_user, idp_client, ...)."""
        done = subprocess.run(  # noqa: S603 -- fixed argument list, no shell
            [sys.executable, "-m", "django", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"IdP: django-admin {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def set_user(self, username: str, *groups: str) -> None:
        """Create the user at the IdP, or change them: their groups become exactly these."""
        self.manage("idp_user", username, "--password", PASSWORD, "--groups", *groups)

    def portal_environment(self, portal_url: str) -> dict[str, str]:
        """What a portal needs to sign people in through this IdP (its endpoints, as its
        /o/.well-known/openid-configuration lists them)."""
        return {
            "PORTAL_OIDC_ENABLED": "true",
            "PORTAL_OIDC_PROVIDER_NAME": "Test IdP",
            "PORTAL_OIDC_CLIENT_ID": CLIENT_ID,
            "PORTAL_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "PORTAL_OIDC_AUTHORIZATION_ENDPOINT": f"{self.url}/o/authorize/",
            "PORTAL_OIDC_TOKEN_ENDPOINT": f"{self.url}/o/token/",
            "PORTAL_OIDC_USERINFO_ENDPOINT": f"{self.url}/o/userinfo/",
            "PORTAL_OIDC_JWKS_ENDPOINT": f"{self.url}/o/.well-known/jwks.json",
            "PORTAL_OIDC_END_SESSION_ENDPOINT": f"{self.url}/o/logout/",
            "PORTAL_OIDC_SCOPES": "openid email profile groups",
            "PORTAL_OIDC_ROLE_GROUPS": (
                "Requesters=byol-requesters,it-desktop;Approvers=byol-approvers;Auditors=byol-auditors"
            ),
        }


def write_rsa_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
    )


@contextmanager
def running_idp(data_dir: Path, log: Path, *, portal_url: str) -> Iterator[Idp]:
    """The IdP on a free port, with the portal at `portal_url` registered as its client."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PORTAL_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "browser_tests.idp.settings", "IDP_DATA_DIR": str(data_dir)}
    idp = Idp(url=f"http://127.0.0.1:{port}", env=env)
    write_rsa_key(data_dir / "rsa.pem")
    idp.manage("migrate", "--noinput")
    idp.manage(
        "idp_client",
        CLIENT_ID,
        CLIENT_SECRET,
        "--redirect-uri",
        f"{portal_url}/oidc/callback/",
        "--post-logout-redirect-uri",
        f"{portal_url}/accounts/login/",
    )
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 -- fixed argument list, no shell
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(server, [f"{idp.url}/o/.well-known/openid-configuration"], log)
        yield idp
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

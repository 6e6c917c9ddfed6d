"""The production settings pass Django's deployment checks, and bad configuration is refused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "x7Kq9!pZ" * 6,
    "DJANGO_ALLOWED_HOSTS": "byol.example.com",
    "PORTAL_VAR_DIR": "",
    "PORTAL_AUDIT_KEY": "a-production-audit-key-kept-outside-the-database-0123456789",
}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    full_env.update(env)
    full_env["PORTAL_VAR_DIR"] = str(tmp_path)
    return subprocess.run(  # noqa: S603 -- our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_deploy_checks_pass_with_debug_off_and_real_values(tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(("name", "value"), [("DJANGO_DEBUG", "maybe"), ("EMAIL_PORT", "twenty-five")])
def test_a_malformed_variable_is_named_in_the_error(tmp_path: Path, name: str, value: str) -> None:
    result = manage("check", env={name: value}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert name in result.stderr


def test_seed_demo_refuses_to_run_in_production(tmp_path: Path) -> None:
    result = manage("seed_demo", env=PRODUCTION_ENV, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "runs only with DJANGO_DEBUG on" in result.stderr


def test_database_connections_are_kept_a_minute_and_health_checked(tmp_path: Path) -> None:
    code = "from django.db import connection; d = connection.settings_dict; print(d['CONN_MAX_AGE'])"
    code += "; print(d['CONN_HEALTH_CHECKS'])"

    result = manage("shell", "-c", code, env={}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["60", "True"]

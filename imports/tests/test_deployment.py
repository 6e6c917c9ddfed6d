"""What the Docker images and the compose stack hold, checked without building or starting anything.

The production image must run the portal with requirements.txt alone: no moto, no sandbox, no
test tools. Its contents are rebuilt here from the Dockerfile's COPY lines and .dockerignore, and
every module in them is read for imports and imported in a fresh interpreter where everything outside
requirements.txt's dependency closure cannot be imported.
"""

import ast
import fnmatch
import importlib.metadata
import io
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imports import roles, workflow
from imports.db_guards import AUDIT_TABLES
from imports.locks import job_lock
from imports.models import AdminEvent, AwsTarget, ImportRequest, RequestEvent
from imports.ratelimit import DatabaseTokenBucket
from imports.tests.conftest import PASSWORD, make_user, pass_preflight, request_fields

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# What the portal needs at run time; anything else a production COPY names is a mistake.
PORTAL_SOURCES = {"manage.py", "portal", "imports", "templates", "static", "requirements.txt"}
# In python:3.11-slim besides what requirements.txt installs.
BASE_IMAGE_DISTRIBUTIONS = {"pip", "setuptools", "wheel"}


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages() -> dict[str, Stage]:
    """The Dockerfile's stages in order, each with its instructions (continuation lines joined)."""
    stages: dict[str, Stage] = {}
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    current: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage-{len(stages)}"
            current = stages[name] = Stage(name=name, parent=words[0])
        else:
            assert current is not None, f"{keyword} before the first FROM"
            current.instructions.append((keyword, args.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    chain = []
    while name in stages:
        chain.insert(0, stages[name])
        name = stages[name].parent
    return chain


def copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY or ADD from the build context."""
    found = []
    for keyword, args in stage.instructions:
        if keyword not in {"COPY", "ADD"}:
            continue
        words = [word for word in shlex.split(args) if not word.startswith("--")]
        assert not any(word.startswith("--from") for word in shlex.split(args)), "no COPY --from stages expected"
        found.append((words[:-1], words[-1]))
    return found


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `relative` (or a folder above it) out of the build context;
    enough of Docker's matching for the patterns this repository uses."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            raise AssertionError("exceptions (!) in .dockerignore are not handled here")
        deep = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if deep != pattern and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], deep):
                return True
    return False


def production_tree(destination: Path, target: str = "production") -> list[str]:
    """Copy what the target's stages COPY from the build context to `destination`, as Docker
    would; returns the sources named."""
    patterns = dockerignore_patterns()
    named = []
    for stage in stage_chain(dockerfile_stages(), target):
        for sources, _ in copies(stage):
            for source in sources:
                named.append(source.rstrip("/"))
                path = ROOT / source
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    if not ignored(relative, patterns):
                        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, destination / relative)
    return named


def requirements(file: str) -> list[Requirement]:
    """The requirements a pip requirements file names, following `-r` includes."""
    found = []
    for line in (ROOT / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found += requirements(line.removeprefix("-r ").strip())
        elif line:
            found.append(Requirement(line))
    return found


def runtime_distributions(file: str = "requirements.txt") -> set[str]:
    """What `pip install -r file` installs: the file's requirements and everything they depend
    on (with the extras asked for), as installed here."""
    pending = requirements(file)
    seen: dict[str, set[str]] = {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform
        for line in requires:
            dependency = Requirement(line)
            marker: Marker | None = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *seen[name]}):
                pending.append(dependency)
    return set(seen) | BASE_IMAGE_DISTRIBUTIONS


def modules_missing_from_production(file: str = "requirements.txt") -> set[str]:
    """Top-level modules installed here (for the sandbox and the tests) that an image installing
    `file` does not have, and the repository's own packages the production image does not copy."""
    runtime = runtime_distributions(file)
    missing = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in runtime for d in distributions)
    }
    return missing | {"sandbox", "bench", "browser_tests"}


# Run in a fresh interpreter inside the copied tree: a finder first on sys.meta_path makes each
# missing module fail to import, as in the image; then Django starts with production settings,
# every module of the tree is imported and the system checks run.
IMPORT_EVERYTHING = """
import importlib, importlib.abc, json, os, pathlib, sys

BLOCKED = set(json.loads(os.environ["BLOCKED_MODULES"]))

class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the production image)", name=name)
        return None

sys.meta_path.insert(0, NotInTheImage())
report = {"blocked_ok": [], "failed": {}, "imported": 0}
for name in ("moto", "sandbox", "pytest"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        report["blocked_ok"].append(name)

import django
django.setup()
for package in ("portal", "imports"):
    for file in sorted(pathlib.Path(package).rglob("*.py")):
        module = ".".join(file.with_suffix("").parts).removesuffix(".__init__")
        try:
            importlib.import_module(module)
            report["imported"] += 1
        except Exception as error:
            report["failed"][module] = f"{type(error).__name__}: {error}"

from django.core.management import call_command
call_command("check")
print(json.dumps(report))
"""


def test_the_production_image_is_the_default_target() -> None:
    stages = dockerfile_stages()

    assert list(stages)[-1] == "production", "`docker build .` builds the last stage: it must be production"
    assert [stage.name for stage in stage_chain(stages, "production")] == ["base", "production"]


def test_the_production_image_copies_only_the_portal() -> None:
    chain = stage_chain(dockerfile_stages(), "production")
    sources = {source.rstrip("/") for stage in chain for names, _ in copies(stage) for source in names}

    assert sources, "the production stage copies nothing?"
    assert sources <= PORTAL_SOURCES, f"the production image copies more than the portal: {sources - PORTAL_SOURCES}"
    assert PORTAL_SOURCES - {"requirements.txt"} <= sources


def test_the_production_image_installs_requirements_txt_only() -> None:
    chain = stage_chain(dockerfile_stages(), "production")
    text = "\n".join(f"{keyword} {args}" for stage in chain for keyword, args in stage.instructions)

    assert "pip install --no-cache-dir -r requirements.txt" in text
    for word in ("requirements-sandbox", "requirements-dev", "moto", "sandbox"):
        assert word not in text, f"the production stages mention {word}"


def test_the_sandbox_image_adds_moto_and_the_sandbox() -> None:
    stages = dockerfile_stages()
    sandbox = stages["sandbox"]
    text = "\n".join(f"{keyword} {args}" for keyword, args in sandbox.instructions)

    assert sandbox.parent == "base"
    assert "pip install --no-cache-dir -r requirements-sandbox.txt" in text
    assert {source.rstrip("/") for names, _ in copies(sandbox) for source in names} == {
        "requirements-sandbox.txt",
        "sandbox",
    }
    assert ("CMD", '["python", "-m", "sandbox", "--host", "0.0.0.0", "--port", "5055"]') in sandbox.instructions


def test_dockerignore_keeps_tests_out_of_every_image() -> None:
    patterns = dockerignore_patterns()

    for path in ("imports/tests/test_deployment.py", "sandbox/tests/conftest.py", "bench/README.md", ".env"):
        assert ignored(path, patterns), path
    for path in ("imports/models.py", "imports/management/commands/grant_app_role.py", "sandbox/server.py"):
        assert not ignored(path, patterns), path


def test_compose_builds_the_portal_from_production_and_the_sandbox_from_its_own_target() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]

    for name in ("migrate", "web", "worker", "beat"):
        assert services[name]["build"] == {"context": ".", "target": "production"}, name
        assert services[name]["image"] == "byol-portal:local", name
    assert services["sandbox"]["build"] == {"context": ".", "target": "sandbox"}
    assert services["sandbox"]["image"] != "byol-portal:local"
    assert services["sandbox"]["profiles"] == ["sandbox"]


def test_every_module_of_the_production_image_imports_without_the_sandbox_moto_or_test_tools(tmp_path: Path) -> None:
    tree = tmp_path / "app"
    production_tree(tree)
    assert not (tree / "imports" / "tests").exists()
    assert not (tree / "sandbox").exists()
    blocked = modules_missing_from_production()
    assert {"moto", "sandbox", "pytest", "pytest_django", "werkzeug", "honcho"} <= blocked
    assert not {"django", "celery", "boto3", "psycopg", "kombu", "redis"} & blocked
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "PORTAL_", "CELERY_", "PYTHONPATH"))
    }
    env |= {
        "BLOCKED_MODULES": json.dumps(sorted(blocked)),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "x7Kq9!pZ" * 6,
        "PORTAL_AUDIT_KEY": "an-audit-key-of-at-least-32-characters-" + "q" * 16,
        "DJANGO_ALLOWED_HOSTS": "byol.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "redis://:secret@127.0.0.1:6379/0",
    }

    result = subprocess.run(  # noqa: S603 -- this interpreter, with the fixed script above
        [sys.executable, "-c", IMPORT_EVERYTHING], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["blocked_ok"] == ["moto", "sandbox", "pytest"], "the finder did not hide them"
    assert report["failed"] == {}
    assert report["imported"] > 30


def test_no_code_in_the_production_image_imports_what_it_lacks_even_inside_a_function(tmp_path: Path) -> None:
    """The import test above runs module bodies; an import inside a function (a management
    command's handle, a task) only shows in the source."""
    production_tree(tmp_path)
    blocked = modules_missing_from_production()
    offenders = []

    for file in sorted(tmp_path.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{file.relative_to(tmp_path)}:{node.lineno} {n}" for n in names if n.split(".")[0] in blocked
            ]

    assert offenders == []


# ---- docker-compose.yml and .env.example ------------------------------------------------------

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}` (and the forms without the colon); `$${` is an
# escaped dollar that Compose leaves to the container's shell.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRETS = {
    "DJANGO_SECRET_KEY": "secret-key-0123456789",
    "PORTAL_AUDIT_KEY": "audit-key-0123456789abcdef0123456789",
    "POSTGRES_PASSWORD": "ownerpw0123456789",
    "PORTAL_APP_DB_PASSWORD": "apppw0123456789",
    "REDIS_PASSWORD": "redispw0123456789",
}


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of the file with `env` as its .env (unset and empty alike for `:`)."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        current = env.get(name)
        empty = current is None or (current == "" and operator and operator.startswith(":"))
        if operator and operator.endswith("?") and empty:
            raise MissingVariable(f"{name}: {argument}")
        if operator and operator.endswith("-") and empty:
            return argument
        return current or ""

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def compose(env: dict[str, str] | None = None) -> dict:
    """The file as Compose resolves it with `env` (by default: .env.example's secrets filled in)."""
    return yaml.safe_load(interpolate(compose_text(), SECRETS if env is None else env))


def compose_text() -> str:
    """The file without its comments (which mention variables in prose)."""
    return "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))


def compose_variables() -> tuple[set[str], set[str]]:
    """Every variable the file reads (interpolated or passed through), and the required ones."""
    found = INTERPOLATION.findall(compose_text())
    names = {name for name, _, _ in found}
    required = {name for name, operator, _ in found if operator.endswith("?")}
    for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values():
        environment = service.get("environment") or {}
        names |= {key for key, value in environment.items() if value is None}
    return names, required


def env_example() -> tuple[dict[str, str], set[str]]:
    """.env.example's live lines (name -> value) and the names it shows commented out."""
    live, commented = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line):
            live[match[1]] = match[2]
        elif match := re.fullmatch(r"# ([A-Z_][A-Z0-9_]*)=.*", line):
            commented.add(match[1])
    return live, commented


def test_env_example_lists_every_variable_compose_reads_and_no_other() -> None:
    names, _ = compose_variables()
    live, commented = env_example()

    assert names - set(live) - commented == set(), "missing from .env.example"
    assert (set(live) | commented) - names == set(), ".env.example lists variables compose does not read"


def test_env_example_leaves_every_required_secret_empty_to_be_filled_in() -> None:
    _, required = compose_variables()
    live, _ = env_example()

    assert set(live) == required
    assert set(live) == set(SECRETS)
    assert all(value == "" for value in live.values()), "no shared default secrets: each is made per deployment"
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        compose({**SECRETS, "POSTGRES_PASSWORD": ""})


def test_compose_has_no_fixed_password_anywhere() -> None:
    services = compose()["services"]

    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    assert postgres["POSTGRES_USER"] == "portal_owner"
    assert services["redis"]["command"] == ["redis-server", "--requirepass", SECRETS["REDIS_PASSWORD"]]
    healthcheck = " ".join(services["redis"]["healthcheck"]["test"])
    assert 'REDISCLI_AUTH="$REDIS_PASSWORD"' in healthcheck
    assert "grep -q PONG" in healthcheck, "redis-cli exits 0 on NOAUTH: only PONG means healthy"
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == SECRETS["REDIS_PASSWORD"]
    for name in ("migrate", "web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["CELERY_BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0", name
        # The shared cache: the same Redis with its password, another database than the broker's.
        assert environment["PORTAL_CACHE_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/1", name
        assert "portal:portal@" not in environment["DATABASE_URL"]


def test_web_serves_the_audit_exports_the_worker_writes_from_one_shared_volume() -> None:
    services = compose()["services"]
    base = "\n".join(f"{keyword} {args}" for keyword, args in dockerfile_stages()["base"].instructions)
    folder = "/var/lib/portal/exports"  # PORTAL_EXPORT_DIR's default: PORTAL_VAR_DIR/exports

    assert "PORTAL_VAR_DIR=/var/lib/portal" in base
    for name in ("web", "worker", "beat"):
        assert f"audit-exports:{folder}" in services[name]["volumes"], name
        assert "PORTAL_EXPORT_DIR" not in services[name]["environment"], name
    assert f"install -d -o portal -g portal -m 0750 /var/lib/portal {folder}" in base, (
        "the volume starts owned by portal"
    )


def test_only_the_web_port_is_published_and_on_the_loopback_by_default() -> None:
    services = compose()["services"]
    published = {name: service.get("ports", []) for name, service in services.items() if service.get("ports")}

    assert published == {"web": ["127.0.0.1:8000:8000"], "sandbox": ["127.0.0.1:5055:5055"]}
    moved = compose({**SECRETS, "PORTAL_BIND_ADDRESS": "10.0.0.5", "PORTAL_PORT": "8443"})["services"]
    assert moved["web"]["ports"] == ["10.0.0.5:8443:8000"]


def test_the_docs_one_liner_fills_in_every_required_secret() -> None:
    docs = (ROOT / "docs" / "docker.md").read_text()
    loop = re.search(r"^for name in ([A-Z_ ]+); do$", docs, re.MULTILINE)

    assert loop is not None
    assert set(loop[1].split()) == set(SECRETS)


def test_migrations_run_as_the_owner_and_the_portal_runs_as_the_app_role_without_the_owners_password() -> None:
    services = compose()["services"]

    migrate = services["migrate"]
    assert migrate["environment"]["DATABASE_URL"] == (
        f"postgres://portal_owner:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/portal"
    )
    assert migrate["environment"]["PORTAL_APP_DB_PASSWORD"] == SECRETS["PORTAL_APP_DB_PASSWORD"]
    assert migrate["command"] == [
        "sh",
        "-c",
        "python manage.py migrate --noinput && python manage.py grant_app_role portal_app",
    ]
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == (
            f"postgres://portal_app:{SECRETS['PORTAL_APP_DB_PASSWORD']}@postgres:5432/portal"
        ), name
        assert not any(SECRETS["POSTGRES_PASSWORD"] in str(value) for value in environment.values()), name
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


# ---- the application's database role (PostgreSQL) ---------------------------------------------


@dataclass
class AppRole:
    name: str
    password: str

    def connect(self) -> psycopg.Connection:
        settings = connection.settings_dict
        return psycopg.connect(
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
            dbname=settings["NAME"],
            user=self.name,
            password=self.password,
            autocommit=True,
        )


def drop_role(name: str) -> None:
    """Roles belong to the cluster, not the test database: leave none behind."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if cursor.fetchone():
            quoted = connection.ops.quote_name(name)
            cursor.execute(f"DROP OWNED BY {quoted}")
            cursor.execute(f"DROP ROLE {quoted}")


def needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("database roles exist only on PostgreSQL; .ci/run runs this with DATABASE_URL=postgres://...")


@pytest.fixture
def app_role(committed_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppRole]:
    """A throwaway application role made by grant_app_role, with real commits (the role connects
    on a connection of its own), dropped afterwards."""
    needs_postgresql()
    role = AppRole(name=f"portal_app_test_{secrets.token_hex(4)}", password=secrets.token_hex(16))
    monkeypatch.setenv("PORTAL_APP_DB_PASSWORD", role.password)
    try:
        call_command("grant_app_role", role.name, stdout=io.StringIO())
        yield role
    finally:
        drop_role(role.name)


@pytest.fixture
def audit_events(committed_db: None) -> None:
    """One request with its event in the request history, and users in the admin history."""
    requester = make_user("rhea", groups=(roles.REQUESTERS,))
    target = AwsTarget.objects.create(name="T", account_id="123456789012", region="us-east-1")
    workflow.submit_request(requester=requester, fields=request_fields(target))
    assert RequestEvent.objects.exists()
    assert AdminEvent.objects.exists()


def refused(role: AppRole, statement: str) -> psycopg.errors.InsufficientPrivilege:
    with role.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as refusal:
        conn.execute(statement)
    return refusal.value


def not_refused(role: AppRole, statements: list[str]) -> dict[str, str]:
    """Each statement on a fresh connection as the role; those it was not refused for lack of
    privilege, with what happened instead."""
    outcomes = {}
    for statement in statements:
        with role.connect() as conn:
            try:
                conn.execute(statement)
                outcomes[statement] = "executed"
            except psycopg.errors.InsufficientPrivilege:
                pass
            except psycopg.Error as error:
                outcomes[statement] = f"{type(error).__name__}: {error}"
    return outcomes


GUARD_ATTACKS = [
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "ALTER TABLE {table} DISABLE TRIGGER {table}_no_change",
    "ALTER TABLE {table} DISABLE TRIGGER USER",
    "ALTER TABLE {table} ENABLE REPLICA TRIGGER {table}_no_change",
    "DROP TRIGGER {table}_no_change ON {table}",
    "DROP TRIGGER {table}_no_truncate ON {table}",
    "CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "DROP FUNCTION {table}_append_only() CASCADE",
    "ALTER TABLE {table} OWNER TO CURRENT_USER",
    "ALTER TABLE {table} RENAME TO {table}_old",
    "DROP TABLE {table} CASCADE",
    "CREATE TRIGGER sneak BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
    "SET session_replication_role = replica",
]


@pytest.mark.postgres
@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_the_app_role_cannot_switch_off_drop_or_replace_the_audit_guards(app_role: AppRole, table: str) -> None:
    assert not_refused(app_role, [attack.format(table=table) for attack in GUARD_ATTACKS]) == {}

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY 1",
            [table],
        )
        assert cursor.fetchall() == [(f"{table}_no_change", "O"), (f"{table}_no_truncate", "O")]


@pytest.mark.postgres
@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_the_app_role_may_not_change_the_audit_histories_at_all_not_even_up_to_the_triggers(
    app_role: AppRole, audit_events: None, table: str
) -> None:
    """Refused for lack of privilege (not by the triggers' restrict_violation), rows present."""
    changes = [f"UPDATE {table} SET hash = repeat('0', 64)", f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"]

    assert not_refused(app_role, changes) == {}
    with app_role.connect() as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
        conn.execute(f"SELECT * FROM {table} LIMIT 1")


@pytest.mark.postgres
def test_the_app_role_owns_nothing_and_has_exactly_the_runtime_privileges(app_role: AppRole) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
            "FROM pg_roles WHERE rolname = %s",
            [app_role.name],
        )
        assert cursor.fetchone() == (False, False, False, False, False, True)
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            [app_role.name],
        )
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
            "FROM information_schema.role_table_grants WHERE grantee = %s GROUP BY table_name",
            [app_role.name],
        )
        granted = dict(cursor.fetchall())
    tables = set(connection.introspection.table_names())

    assert set(granted) == tables
    assert {table: granted[table] for table in AUDIT_TABLES} == dict.fromkeys(AUDIT_TABLES, "INSERT,SELECT")
    assert granted["django_migrations"] == "SELECT"
    others = tables - {*AUDIT_TABLES, "django_migrations"}
    assert {granted[table] for table in others} == {"DELETE,INSERT,SELECT,UPDATE"}
    assert {"django_session", "axes_accessattempt", "imports_auditchainhead", "imports_joblock"} <= others


@pytest.mark.postgres
def test_the_portal_works_as_the_app_role(app_role: AppRole, settings: Any) -> None:
    """The workflow, the audit chains, locks, the rate limiter, log-in (sessions, django-axes),
    pages (the request list's search included) and verify_audit, all through Django's own
    connection logged in as the application role."""
    settings.PORTAL_ADMIN_OTP = False
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(USER=app_role.name, PASSWORD=app_role.password)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (app_role.name,)

        requester = make_user("rhea", groups=(roles.REQUESTERS,))
        approver = make_user("abel", groups=(roles.APPROVERS,))
        target = AwsTarget.objects.create(name="T", account_id="123456789012", region="us-east-1")
        request = pass_preflight(workflow.submit_request(requester=requester, fields=request_fields(target)))
        request = workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
        request = workflow.claim_for_import(request_id=request.pk, lease_seconds=30)
        assert request.state == ImportRequest.State.SUBMITTING
        with job_lock("deployment-test", hold_seconds=5) as taken:
            assert taken
        assert DatabaseTokenBucket().try_take(target.account_id) == 0

        client = Client()
        assert client.post(reverse("login"), {"username": "abel", "password": "wrong"}).status_code == 200
        client.post(reverse("login"), {"username": "abel", "password": PASSWORD})
        assert client.get(reverse("dashboard")).status_code == 200
        assert client.get(reverse("request_list"), {"q": "win10"}).status_code == 200
        assert client.get(reverse("request_detail", args=[request.pk])).status_code == 200

        out, err = io.StringIO(), io.StringIO()
        call_command("verify_audit", stdout=out, stderr=err)
        assert "intact" in out.getvalue()
        assert RequestEvent.objects.filter(request=request).count() == 4
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)


@pytest.mark.postgres
def test_tables_a_later_migration_creates_are_granted_by_default(app_role: AppRole) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE deployment_probe (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, x text)")
    try:
        with app_role.connect() as conn:
            conn.execute("INSERT INTO deployment_probe (x) VALUES ('a')")
            conn.execute("UPDATE deployment_probe SET x = 'b'")
            assert conn.execute("SELECT x FROM deployment_probe").fetchall() == [("b",)]
            conn.execute("DELETE FROM deployment_probe")
        refused(app_role, "TRUNCATE deployment_probe")
        refused(app_role, "ALTER TABLE deployment_probe ADD COLUMN y text")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE deployment_probe")


@pytest.mark.postgres
def test_grant_app_role_again_starts_from_nothing(app_role: AppRole) -> None:
    quoted = connection.ops.quote_name(app_role.name)
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {quoted}")

    call_command("grant_app_role", app_role.name, stdout=io.StringIO())

    refused(app_role, "DELETE FROM imports_requestevent")
    refused(app_role, "TRUNCATE imports_importrequest CASCADE")
    with app_role.connect() as conn:
        assert conn.execute("SELECT count(*) FROM imports_importrequest").fetchone() == (0,)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("attributes", "message"),
    [("LOGIN SUPERUSER", "SUPERUSER"), ("LOGIN CREATEROLE", "CREATEROLE"), ("LOGIN IN ROLE {owner}", "member of")],
)
def test_grant_app_role_refuses_a_role_with_powers(committed_db: None, attributes: str, message: str) -> None:
    needs_postgresql()
    name = f"portal_app_test_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = connection.ops.quote_name(cursor.fetchone()[0])
        cursor.execute(f"CREATE ROLE {name} {attributes.format(owner=owner)}")
    try:
        with pytest.raises(CommandError, match=message):
            call_command("grant_app_role", name, stdout=io.StringIO())
    finally:
        drop_role(name)


@pytest.mark.postgres
def test_grant_app_role_refuses_a_role_that_owns_a_table(committed_db: None) -> None:
    needs_postgresql()
    name = f"portal_app_test_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN")
        cursor.execute("CREATE TABLE deployment_owned (id int)")
        cursor.execute(f"ALTER TABLE deployment_owned OWNER TO {name}")
    try:
        with pytest.raises(CommandError, match="owns table deployment_owned"):
            call_command("grant_app_role", name, stdout=io.StringIO())
    finally:
        drop_role(name)


@pytest.mark.postgres
def test_grant_app_role_needs_a_password_to_create_the_role_and_refuses_the_owner(
    committed_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_postgresql()
    monkeypatch.delenv("PORTAL_APP_DB_PASSWORD", raising=False)
    name = f"portal_app_test_{secrets.token_hex(4)}"

    with pytest.raises(CommandError, match="set PORTAL_APP_DB_PASSWORD"):
        call_command("grant_app_role", name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [name])
        assert cursor.fetchone() == (0,)
    with pytest.raises(CommandError, match="the tables' owner"):
        call_command("grant_app_role", owner)
    with pytest.raises(CommandError, match="plain role name"):
        call_command("grant_app_role", 'portal"; DROP TABLE x; --')


def test_grant_app_role_says_it_needs_postgresql(db: None) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("about other databases; on PostgreSQL the tests above run it")

    with pytest.raises(CommandError, match="needs PostgreSQL; this database is sqlite"):
        call_command("grant_app_role", "portal_app")


# Run in a fresh interpreter inside the sandbox image's tree, with what that image lacks hidden:
# every module of the sandbox imports, and `python -m sandbox --help` (its CMD, without serving).
SANDBOX_STARTS = """
import importlib, importlib.abc, json, os, pathlib, runpy, sys

BLOCKED = set(json.loads(os.environ["BLOCKED_MODULES"]))

class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the sandbox image)", name=name)
        return None

sys.meta_path.insert(0, NotInTheImage())
for file in sorted(pathlib.Path("sandbox").rglob("*.py")):
    if file.name != "__main__.py":
        importlib.import_module(".".join(file.with_suffix("").parts).removesuffix(".__init__"))
sys.argv = ["python -m sandbox", "--help"]
runpy.run_module("sandbox", run_name="__main__", alter_sys=True)
"""


def test_the_sandbox_image_starts_with_requirements_sandbox_and_the_sandbox_package_alone(tmp_path: Path) -> None:
    tree = tmp_path / "app"
    production_tree(tree, target="sandbox")
    assert sorted(p.name for p in tree.iterdir()) == ["requirements-sandbox.txt", "requirements.txt", "sandbox"]
    assert not (tree / "sandbox" / "tests").exists()
    blocked = (modules_missing_from_production("requirements-sandbox.txt") - {"sandbox"}) | {"portal", "imports"}
    assert "moto" not in blocked
    assert {"pytest", "pytest_django", "playwright", "portal", "imports"} <= blocked
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTHONPATH"))}
    env["BLOCKED_MODULES"] = json.dumps(sorted(blocked))

    result = subprocess.run(  # noqa: S603 -- this interpreter, with the fixed script above
        [sys.executable, "-c", SANDBOX_STARTS], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "usage: python -m sandbox" in result.stdout

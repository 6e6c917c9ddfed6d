"""SQL that makes the database itself keep the audit histories append-only.

Applied by migrations (0002 for the request history, 0007 for the admin history). Tests that
commit for real lift them for their clean-up flush and restore them right after
(imports/tests/conftest.py).
"""

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

REQUEST_HISTORY = "imports_requestevent"
ADMIN_HISTORY = "imports_adminevent"
AUDIT_TABLES = (REQUEST_HISTORY, ADMIN_HISTORY)


def _sqlite_create(table: str) -> list[str]:
    return [
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"""
        for op in ("UPDATE", "DELETE")
    ]


def _sqlite_drop(table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete")]


def _postgres_create(table: str) -> list[str]:
    return [
        # TRUNCATE of an already empty table removes nothing, so it is let through: that is what
        # a test database's flush does once the tests have lifted the guards and emptied it.
        f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' AND NOT EXISTS (SELECT 1 FROM {table}) THEN
                RETURN NULL;
            END IF;
            RAISE EXCEPTION '{table} is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
        END $$""",  # noqa: S608 -- table is one of our constants, not input
        f"""CREATE OR REPLACE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""",
        f"""CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()""",
    ]


def _postgres_drop(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"DROP FUNCTION IF EXISTS {table}_append_only()",
    ]


_STATEMENTS = {"sqlite": (_sqlite_create, _sqlite_drop), "postgresql": (_postgres_create, _postgres_drop)}


def _statements(connection: BaseDatabaseWrapper, index: int, tables: Iterable[str]) -> list[str]:
    try:
        make = _STATEMENTS[connection.vendor][index]
    except KeyError:
        raise NotImplementedError(f"no audit guards for {connection.vendor}: use SQLite or PostgreSQL") from None
    return [sql for table in tables if table in AUDIT_TABLES for sql in make(table)]


def install_audit_guards(connection: BaseDatabaseWrapper, tables: Iterable[str] = AUDIT_TABLES) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, 0, tables):
            cursor.execute(sql)


def remove_audit_guards(connection: BaseDatabaseWrapper, tables: Iterable[str] = AUDIT_TABLES) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, 1, tables):
            cursor.execute(sql)


# An approval's requester must be its request's: with the CHECK that an approval's approver is
# not its requester (Approval's constraints), the database refuses self-approval for a quorum
# as it does for the request's final approver (importrequest_approver_is_not_requester).
APPROVALS = "imports_approval"
_APPROVAL_MISMATCH = "an approval must name the requester of its request"

_APPROVAL_GUARD = {
    "sqlite": (
        [
            f"""CREATE TRIGGER IF NOT EXISTS {APPROVALS}_requester_{op.lower()} BEFORE {op} ON {APPROVALS}
            WHEN NEW.requester_id IS NOT (SELECT requester_id FROM imports_importrequest WHERE id = NEW.request_id)
            BEGIN SELECT RAISE(ABORT, '{_APPROVAL_MISMATCH}'); END"""  # noqa: S608 -- our constants
            for op in ("INSERT", "UPDATE")
        ],
        [f"DROP TRIGGER IF EXISTS {APPROVALS}_requester_{op}" for op in ("insert", "update")],
    ),
    "postgresql": (
        [
            f"""CREATE OR REPLACE FUNCTION {APPROVALS}_requester() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.requester_id IS DISTINCT FROM
                   (SELECT requester_id FROM imports_importrequest WHERE id = NEW.request_id) THEN
                    RAISE EXCEPTION '{_APPROVAL_MISMATCH}' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$""",  # noqa: S608 -- our constants, not input
            f"""CREATE OR REPLACE TRIGGER {APPROVALS}_requester BEFORE INSERT OR UPDATE ON {APPROVALS}
            FOR EACH ROW EXECUTE FUNCTION {APPROVALS}_requester()""",
        ],
        [
            f"DROP TRIGGER IF EXISTS {APPROVALS}_requester ON {APPROVALS}",
            f"DROP FUNCTION IF EXISTS {APPROVALS}_requester()",
        ],
    ),
}


def install_approval_guard(connection: BaseDatabaseWrapper, *, remove: bool = False) -> None:
    try:
        statements = _APPROVAL_GUARD[connection.vendor][1 if remove else 0]
    except KeyError:
        raise NotImplementedError(f"no approval guard for {connection.vendor}: use SQLite or PostgreSQL") from None
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)

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

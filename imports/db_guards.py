"""SQL that makes the database itself keep the audit history append-only.

Applied by migration 0002. Tests that commit for real lift them for their clean-up flush
and restore them right after (imports/tests/conftest.py).
"""

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "imports_requestevent"

_SQLITE_CREATE = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_{op.lower()} BEFORE {op} ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: {op} refused'); END"""
    for op in ("UPDATE", "DELETE")
]
_SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_no_{op.lower()}" for op in ("update", "delete")]

_POSTGRES_CREATE = [
    # TRUNCATE of an already empty table removes nothing, so it is let through: that is what
    # a test database's flush does once the tests have lifted the guards and emptied it.
    f"""CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' AND NOT EXISTS (SELECT 1 FROM {TABLE}) THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END $$""",  # noqa: S608 -- TABLE is a constant, not input
    f"""CREATE OR REPLACE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()""",
    f"""CREATE OR REPLACE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()""",
]
_POSTGRES_DROP = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_change ON {TABLE}",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {TABLE}_append_only()",
]

_STATEMENTS = {"sqlite": (_SQLITE_CREATE, _SQLITE_DROP), "postgresql": (_POSTGRES_CREATE, _POSTGRES_DROP)}


def _statements(connection: BaseDatabaseWrapper, index: int) -> list[str]:
    try:
        return _STATEMENTS[connection.vendor][index]
    except KeyError:
        raise NotImplementedError(f"no audit guards for {connection.vendor}: use SQLite or PostgreSQL") from None


def install_audit_guards(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, 0):
            cursor.execute(sql)


def remove_audit_guards(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, 1):
            cursor.execute(sql)

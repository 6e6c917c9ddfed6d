"""Give the portal's run-time database role what the portal does, and nothing it could undo the
audit guards with.

The role that runs migrations owns the tables; the owner of a table can `ALTER TABLE ... DISABLE
TRIGGER`, drop the append-only triggers or replace their function. So web, worker and beat connect
as another role, which owns nothing: it reads and writes rows, uses the sequences, and on the
audit histories may only read and append (no UPDATE or DELETE even before the triggers fire).
Run by the owner after every `migrate` (docker-compose.yml's migrate service does); idempotent.
PostgreSQL only.

    python manage.py grant_app_role portal_app   # password, for a new role: PORTAL_APP_DB_PASSWORD
"""

import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

from imports.db_guards import AUDIT_TABLES

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Django's record of applied migrations: the application reads it, only `migrate` writes it.
READ_ONLY_TABLES = ("django_migrations",)
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"


class Command(BaseCommand):
    help = (
        "Create (or update) the application's PostgreSQL role: it owns nothing, may SELECT, INSERT, UPDATE and "
        "DELETE rows, only SELECT and INSERT on the audit histories, and gets the same on tables later "
        "migrations create. Run as the owner of the tables, after migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the role web, worker and beat connect as, e.g. portal_app")
        parser.add_argument(
            "--password-env",
            default="PORTAL_APP_DB_PASSWORD",
            help="environment variable holding the role's password (default PORTAL_APP_DB_PASSWORD); required to "
            "create the role, and when set the role's password is set to it",
        )

    def handle(self, *args: Any, role: str, password_env: str, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"grant_app_role needs PostgreSQL; this database is {connection.vendor}, which has no roles "
                "(on SQLite, the file's permissions decide who may write)."
            )
        if not ROLE_NAME.fullmatch(role):
            raise CommandError(f"{role!r} is not a plain role name (lower-case letters, digits and _)")
        password = os.environ.get(password_env, "")

        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                cursor.execute("SELECT current_user, current_schema(), current_database()")
                owner, schema, database = cursor.fetchone()
                if role == owner:
                    raise CommandError(
                        f"{role} is the role running this command, the tables' owner: the application needs a "
                        "role of its own"
                    )
                tables = self._tables(cursor, schema)
                missing = [table for table in (*AUDIT_TABLES, *READ_ONLY_TABLES) if table not in tables]
                if missing:
                    raise CommandError(f"no table {', '.join(missing)} in schema {schema}: run migrate first")
                created = self._ensure_role(cursor, role, password, password_env, owner)
                self._grant(cursor, role, schema, database)

        append_only = ", ".join(AUDIT_TABLES)
        self.stdout.write(
            f"{role} ({'created' if created else 'existing'}): owns nothing; in schema {schema} {TABLE_PRIVILEGES} "
            f"on {len(tables) - len(AUDIT_TABLES) - len(READ_ONLY_TABLES)} tables, SELECT, INSERT only on "
            f"{append_only} (append-only), SELECT only on {', '.join(READ_ONLY_TABLES)}, {SEQUENCE_PRIVILEGES} on "
            f"sequences; tables and sequences {owner} creates later get {TABLE_PRIVILEGES} and {SEQUENCE_PRIVILEGES} "
            "(run this again after each migrate)."
        )

    @staticmethod
    def _tables(cursor: Any, schema: str) -> set[str]:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            [schema],
        )
        return {name for (name,) in cursor.fetchall()}

    def _ensure_role(self, cursor: Any, role: str, password: str, password_env: str, owner: str) -> bool:
        cursor.execute(
            "SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cursor.fetchone()
        if found is None:
            if not password:
                raise CommandError(f"role {role} does not exist: set {password_env} to create it with that password")
            cursor.execute(
                sql.SQL(
                    "CREATE ROLE {} WITH LOGIN PASSWORD {} "
                    "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                ).format(sql.Identifier(role), sql.Literal(password))
            )
            return True
        oid, *powers = found
        names = ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")
        if any(powers):
            held = ", ".join(name for name, held in zip(names, powers, strict=True) if held)
            raise CommandError(f"role {role} has {held}: the application's role must have none of these")
        cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, owner])
        if cursor.fetchone()[0]:
            raise CommandError(f"role {role} is a member of {owner}, so it could act as the tables' owner")
        cursor.execute(
            "SELECT 'table ' || relname FROM pg_class WHERE relowner = %(oid)s "
            "UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %(oid)s "
            "UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = %(oid)s "
            "UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datdba = %(oid)s",
            {"oid": oid},
        )
        owned = [name for (name,) in cursor.fetchall()]
        if owned:
            raise CommandError(
                f"role {role} owns {', '.join(owned[:5])}{' and more' if len(owned) > 5 else ''}: an owner can "
                "disable triggers; reassign them to the owner role (REASSIGN OWNED) first"
            )
        if password:
            cursor.execute(
                sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
        return False

    @staticmethod
    def _grant(cursor: Any, role: str, schema: str, database: str) -> None:
        def statement(template: str, **identifiers: sql.Identifier) -> sql.Composed:
            return sql.SQL(template).format(role=sql.Identifier(role), schema=sql.Identifier(schema), **identifiers)

        # Privilege lists are our constants; names go in as quoted identifiers.
        statements = [
            statement("GRANT CONNECT ON DATABASE {database} TO {role}", database=sql.Identifier(database)),
            statement("GRANT USAGE ON SCHEMA {schema} TO {role}"),
            # From nothing, every time: whatever was granted before (by hand, or ALL) goes first.
            statement("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}"),
            statement(f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {{schema}} TO {{role}}"),
            statement("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}"),
            statement(f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {{schema}} TO {{role}}"),
            # Tables and sequences the owner creates later (the next migrations) get the same.
            statement(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT {TABLE_PRIVILEGES} ON TABLES TO {{role}}"),
            statement(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {{role}}"
            ),
        ]
        # The audit histories: read and append only, whatever the triggers do.
        statements += [
            statement("REVOKE UPDATE, DELETE ON {table} FROM {role}", table=sql.Identifier(schema, table))
            for table in AUDIT_TABLES
        ]
        statements += [
            statement("REVOKE INSERT, UPDATE, DELETE ON {table} FROM {role}", table=sql.Identifier(schema, table))
            for table in READ_ONLY_TABLES
        ]
        for composed in statements:
            cursor.execute(composed)

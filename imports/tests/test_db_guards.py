"""What the database itself refuses, tried with raw SQL past the ORM and the workflow."""

from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from imports import roles, workflow
from imports.models import AwsTarget, ImportRequest, RequestEvent
from imports.tests.conftest import make_user, request_fields


def run_sql(sql: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_to_update_an_audit_event(make_request: Any) -> None:
    event = make_request(checked=False).events.get()

    with pytest.raises(DatabaseError, match="append-only"):
        run_sql("UPDATE imports_requestevent SET comment = %s WHERE id = %s", ["rewritten", event.pk])

    event.refresh_from_db()
    assert event.comment == ""


def test_the_database_refuses_to_delete_an_audit_event(make_request: Any) -> None:
    event = make_request(checked=False).events.get()

    with pytest.raises(DatabaseError, match="append-only"):
        run_sql("DELETE FROM imports_requestevent WHERE id = %s", [event.pk])

    assert RequestEvent.objects.filter(pk=event.pk).exists()


def test_the_orm_cannot_update_or_delete_audit_events_either(make_request: Any) -> None:
    make_request(checked=False)

    with pytest.raises(DatabaseError), transaction.atomic():
        RequestEvent.objects.update(comment="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        RequestEvent.objects.all().delete()

    assert RequestEvent.objects.get().comment == ""


@pytest.mark.postgres
def test_postgresql_refuses_to_truncate_the_audit_history(committed_db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL; .ci/run runs this suite on PostgreSQL too")
    requester = make_user("tina", groups=(roles.REQUESTERS,))
    target = AwsTarget.objects.create(name="T", account_id="123456789012", region="us-east-1")
    workflow.submit_request(requester=requester, fields=request_fields(target))

    with pytest.raises(DatabaseError, match="append-only"):
        run_sql("TRUNCATE imports_requestevent CASCADE", [])

    assert RequestEvent.objects.count() == 1


def test_the_database_refuses_an_approver_who_is_the_requester(make_request: Any) -> None:
    request = make_request()

    with pytest.raises(IntegrityError):
        run_sql("UPDATE imports_importrequest SET approver_id = requester_id WHERE id = %s", [request.pk])

    request.refresh_from_db()
    assert request.approver_id is None


def test_the_database_accepts_an_approver_who_is_someone_else(make_request: Any, approver: Any) -> None:
    request = make_request()

    run_sql("UPDATE imports_importrequest SET approver_id = %s WHERE id = %s", [approver.pk, request.pk])

    request.refresh_from_db()
    assert request.approver == approver


def _insert_copy_sql(state: str) -> tuple[str, list[Any]]:
    sql = (
        "INSERT INTO imports_importrequest (target_id, requester_id, state, version, windows_version, ec2_image_id, "
        "ingestion_process, image_name, image_description, tags, office, justification, aws_image_id, failure, "
        "preflight, import_calls, created_at, updated_at) "
        "SELECT target_id, requester_id, %s, 1, windows_version, ec2_image_id, ingestion_process, image_name, "
        "image_description, tags, office, justification, '', failure, preflight, 0, created_at, updated_at "
        "FROM imports_importrequest WHERE id = %s"
    )
    return sql, [state]


@pytest.mark.parametrize("state", ["submitted", "approved", "importing", "available", "changes_requested"])
def test_the_database_refuses_two_live_requests_with_one_image_name_on_a_target(make_request: Any, state: str) -> None:
    original = make_request(image_name="one-name")
    sql, params = _insert_copy_sql(state)

    with pytest.raises(IntegrityError):
        run_sql(sql, [*params, original.pk])

    assert ImportRequest.objects.filter(image_name="one-name").count() == 1


@pytest.mark.parametrize("state", ["rejected", "cancelled", "failed"])
def test_ended_requests_do_not_hold_their_image_name(make_request: Any, state: str) -> None:
    original = make_request(image_name="one-name")
    sql, params = _insert_copy_sql(state)

    run_sql(sql, [*params, original.pk])

    assert ImportRequest.objects.filter(image_name="one-name").count() == 2


def test_the_same_name_on_another_target_is_fine(make_request: Any, byop_target: Any, requester: Any) -> None:
    make_request(image_name="one-name")

    other = workflow.submit_request(requester=requester, fields=request_fields(byop_target, image_name="one-name"))

    assert other.state == ImportRequest.State.SUBMITTED


def test_the_database_refuses_an_unknown_state(make_request: Any) -> None:
    request = make_request()

    with pytest.raises(IntegrityError):
        run_sql("UPDATE imports_importrequest SET state = %s WHERE id = %s", ["hacked", request.pk])

    request.refresh_from_db()
    assert request.state == "submitted"


def test_every_migrate_leaves_both_audit_histories_guarded(make_request: Any) -> None:
    """A migration that alters an audit table makes SQLite rebuild it without its triggers;
    migrate's last step puts them back. Shown by lifting the guards and migrating again."""
    from django.core.management import call_command

    from imports.db_guards import AUDIT_TABLES, remove_audit_guards

    make_request(checked=False)  # an event in each history: the requester's creation, the request's
    remove_audit_guards(connection)
    call_command("migrate", verbosity=0)

    for table in AUDIT_TABLES:
        with pytest.raises(DatabaseError, match="append-only"):
            run_sql(f"DELETE FROM {table}", [])

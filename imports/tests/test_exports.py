"""Audit exports: a worker writes the CSV into a file, complete with its trailer or not at all."""

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from imports import audit, exports, workflow
from imports.forms import MSG_EXPORT_BAD_REFERENCE, MSG_EXPORT_DATES_REVERSED, MSG_EXPORT_NO_SUCH_REQUEST
from imports.models import AuditChainHead, AuditExport, ImportRequest, RequestEvent
from imports.tests.conftest import request_fields


@pytest.fixture(autouse=True)
def export_dir(settings: Any, tmp_path: Path) -> Path:
    settings.PORTAL_EXPORT_DIR = tmp_path / "exports"
    return settings.PORTAL_EXPORT_DIR


def read_export(export: AuditExport) -> tuple[list[list[str]], str]:
    export.refresh_from_db()
    path = exports.file_path(export)
    assert path is not None
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(csv.reader(lines[:-1])), lines[-1]


@pytest.fixture
def history(make_request: Any, approver: Any, other_requester: Any) -> list[ImportRequest]:
    """Three requests with their events; one rejected with a comment that looks like a formula."""
    first = make_request(image_name="first")
    workflow.reject_request(request_id=first.pk, actor=approver, expected_version=1, comment="=HYPERLINK(1)")
    second = make_request(image_name="second", by=other_requester)
    third = make_request(image_name="third")
    return [first, second, third]


def test_a_complete_export_holds_every_event_and_ends_with_the_count_and_the_chain_head(
    history: list[ImportRequest], auditor: Any
) -> None:
    export = exports.request_export(user=auditor)

    built = exports.build_export(export.pk)

    assert built is not None
    export.refresh_from_db()
    head = AuditChainHead.objects.get(pk=1)
    assert export.state == AuditExport.State.DONE
    assert (export.rows, export.head_seq, export.head_hash) == (RequestEvent.objects.count(), head.seq, head.hash)
    rows, last_line = read_export(export)
    assert rows[0] == exports.HEADER
    assert [int(row[0]) for row in rows[1:]] == list(RequestEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert last_line == f"# end: {export.rows} events, up to #{head.seq}, head {head.hash}"
    comments = [row[exports.HEADER.index("comment")] for row in rows[1:]]
    assert "'=HYPERLINK(1)" in comments


def test_each_exported_row_can_be_verified_offline_with_the_key(history: list[ImportRequest], auditor: Any) -> None:
    export = exports.request_export(user=auditor)
    exports.build_export(export.pk)
    rows, _ = read_export(export)

    key = audit.key_ring().keys[audit.key_ring().current_id]
    previous = audit.GENESIS_HASH
    for row in rows[1:]:
        event = dict(zip(exports.HEADER, row, strict=True))
        comment = event["comment"][1:] if event["comment"].startswith("'") else event["comment"]
        sealed = {
            "seq": int(event["seq"]),
            "request": int(event["request"].removeprefix("IMP-")),
            "created_at": event["created_at"],
            "actor": int(event["actor_id"]) if event["actor_id"] else None,
            "actor_username": event["actor_username"],
            "action": event["action"],
            "from_state": event["from_state"],
            "to_state": event["to_state"],
            "comment": comment,
            "data": json.loads(event["data"]),
            "prev_hash": event["prev_hash"],
            "key_id": event["key_id"],
        }
        assert event["prev_hash"] == previous
        assert audit.mac(key, sealed) == event["hash"]
        previous = event["hash"]


def test_a_filtered_export_says_so_in_its_trailer_with_its_number_of_events(
    history: list[ImportRequest], auditor: Any
) -> None:
    first = history[0]
    today = timezone.localdate()
    export = exports.request_export(user=auditor, request=first, date_from=today, date_to=today)

    exports.build_export(export.pk)

    export.refresh_from_db()
    expected = RequestEvent.objects.filter(request=first).count()
    rows, last_line = read_export(export)
    assert export.rows == expected == len(rows) - 1
    assert {row[1] for row in rows[1:]} == {first.reference}
    assert last_line.startswith(
        f"# end: {expected} events matching request {first.reference}, from {today}, to {today} (filtered), up to #"
    )


def test_an_export_of_days_without_events_is_empty_but_complete(history: list[ImportRequest], auditor: Any) -> None:
    long_ago = timezone.localdate() - timedelta(days=400)
    export = exports.request_export(user=auditor, date_from=long_ago, date_to=long_ago + timedelta(days=1))

    exports.build_export(export.pk)

    export.refresh_from_db()
    rows, last_line = read_export(export)
    assert (export.state, export.rows, len(rows)) == (AuditExport.State.DONE, 0, 1)
    assert last_line.startswith("# end: 0 events matching from ")


def test_a_target_filter_exports_only_that_targets_requests(
    history: list[ImportRequest], byop_target: Any, requester: Any, auditor: Any
) -> None:
    elsewhere = workflow.submit_request(requester=requester, fields=request_fields(byop_target))
    export = exports.request_export(user=auditor, target=byop_target)

    exports.build_export(export.pk)

    rows, last_line = read_export(export)
    assert {row[1] for row in rows[1:]} == {elsewhere.reference}
    assert "matching target Core (filtered)" in last_line


def test_a_failing_export_is_marked_failed_with_a_message_and_leaves_no_file(
    history: list[ImportRequest], auditor: Any, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rows_then_failure(*args: Any, **kwargs: Any) -> Any:
        yield ["1"] * len(exports.HEADER)
        raise ConnectionError("the database went away")

    monkeypatch.setattr(exports, "event_rows", rows_then_failure)
    export = exports.request_export(user=auditor)

    exports.build_export(export.pk)

    export.refresh_from_db()
    assert export.state == AuditExport.State.FAILED
    assert export.message == exports.MSG_FAILED.format(error="ConnectionError")
    assert export.file_name == ""
    assert list(export_dir.iterdir()) == []


def test_an_export_is_built_once_even_if_its_message_comes_twice(history: list[ImportRequest], auditor: Any) -> None:
    export = exports.request_export(user=auditor)
    exports.build_export(export.pk)

    again = exports.build_export(export.pk)

    assert again is None
    export.refresh_from_db()
    assert export.state == AuditExport.State.DONE


# --- the page --------------------------------------------------------------------------------


def test_asking_for_an_export_queues_it_for_a_worker_after_commit(
    client: Client, auditor: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(auditor)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit_export"), {"date_from": "2026-01-01", "date_to": "2026-01-31"})

    assert response.status_code == 302
    export = AuditExport.objects.get()
    assert (export.requested_by, str(export.date_from), export.state) == (auditor, "2026-01-01", "queued")
    assert published == [("build_audit_export", (export.pk,))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, MSG_EXPORT_DATES_REVERSED),
        ({"reference": "IMP-999999"}, MSG_EXPORT_NO_SUCH_REQUEST.format(reference="IMP-999999")),
        ({"reference": "'; drop table"}, MSG_EXPORT_BAD_REFERENCE),
        ({"date_from": "99999-01-01"}, "Enter a date between"),
        ({"date_to": "9999-12-31", "target": "12345678901234567890"}, "Select a valid choice"),
    ],
)
def test_bad_export_filters_are_explained_and_nothing_is_queued(
    client: Client, auditor: Any, data: dict[str, str], message: str
) -> None:
    client.force_login(auditor)

    response = client.post(reverse("audit_export"), data)

    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert not AuditExport.objects.exists()


def test_the_page_lists_my_exports_with_a_download_link_once_ready(
    client: Client, history: list[ImportRequest], auditor: Any, approver: Any
) -> None:
    ready = exports.request_export(user=auditor)
    exports.build_export(ready.pk)
    waiting = exports.request_export(user=auditor)
    someone_elses = exports.request_export(user=approver)
    client.force_login(auditor)

    response = client.get(reverse("audit_export"))

    page = response.content.decode()
    assert response.status_code == 200
    assert reverse("audit_export_download", args=[ready.pk]) in page
    assert reverse("audit_export_download", args=[waiting.pk]) not in page
    assert "Queued" in page
    assert f"<td>{someone_elses.pk}</td>" not in page


def test_the_owner_downloads_a_finished_export_and_nobody_stores_it(
    client: Client, history: list[ImportRequest], approver: Any
) -> None:
    export = exports.request_export(user=approver)
    exports.build_export(export.pk)
    client.force_login(approver)

    response = client.get(reverse("audit_export_download", args=[export.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "no-store" in response["Cache-Control"]
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[-1].startswith(f"# end: {RequestEvent.objects.count()} events")


@pytest.mark.parametrize(("who", "status"), [("auditor", 200), ("other_approver", 404), ("requester", 403)])
def test_only_the_owner_and_auditors_download_an_export(
    client: Client, history: list[ImportRequest], approver: Any, who: str, status: int, request: Any
) -> None:
    export = exports.request_export(user=approver)
    exports.build_export(export.pk)
    client.force_login(request.getfixturevalue(who))

    response = client.get(reverse("audit_export_download", args=[export.pk]))

    assert response.status_code == status


def test_an_export_not_ready_yet_is_not_downloadable(client: Client, auditor: Any) -> None:
    export = exports.request_export(user=auditor)
    client.force_login(auditor)

    response = client.get(reverse("audit_export_download", args=[export.pk]))

    assert response.status_code == 404


def test_a_requester_cannot_ask_for_an_export(client: Client, requester: Any) -> None:
    client.force_login(requester)

    response = client.post(reverse("audit_export"), {})

    assert response.status_code == 403
    assert not AuditExport.objects.exists()


# --- the beat clean-up -------------------------------------------------------------------------


def test_the_clean_up_deletes_old_exports_and_their_files_and_keeps_recent_ones(
    history: list[ImportRequest], auditor: Any, settings: Any, published: list[Any]
) -> None:
    settings.PORTAL_EXPORT_RETENTION_DAYS = 7
    old = exports.request_export(user=auditor)
    exports.build_export(old.pk)
    old.refresh_from_db()
    old_file = exports.file_path(old)
    AuditExport.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    recent = exports.request_export(user=auditor)
    exports.build_export(recent.pk)

    cleaned = exports.clean_up()

    assert cleaned == exports.CleanUp(deleted=1, failed_stuck=0, resent=0)
    assert list(AuditExport.objects.values_list("pk", flat=True)) == [recent.pk]
    assert old_file is not None
    assert not old_file.exists()
    recent.refresh_from_db()
    assert exports.file_path(recent).is_file()


def test_the_clean_up_fails_exports_a_dead_worker_left_and_resends_lost_ones(
    auditor: Any, published: list[Any]
) -> None:
    long_ago = timezone.now() - timedelta(days=1)
    stuck = exports.request_export(user=auditor)
    AuditExport.objects.filter(pk=stuck.pk).update(state="running", started_at=long_ago)
    lost = exports.request_export(user=auditor)
    AuditExport.objects.filter(pk=lost.pk).update(created_at=long_ago)

    cleaned = exports.clean_up()

    assert cleaned == exports.CleanUp(deleted=0, failed_stuck=1, resent=1)
    stuck.refresh_from_db()
    assert (stuck.state, stuck.message) == (AuditExport.State.FAILED, exports.MSG_STUCK)
    assert published == [("build_audit_export", (lost.pk,))]

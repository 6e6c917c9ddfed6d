"""Two people acting on one request at the same moment, on PostgreSQL with real connections."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from imports import roles, workflow
from imports.models import AwsTarget, ImportRequest, RequestEvent
from imports.tests.conftest import make_user, pass_preflight, request_fields

pytestmark = pytest.mark.postgres


def race(*contenders: Callable[[], Any]) -> list[Any]:
    """Run each callable in its own thread and database connection, released together."""
    barrier = threading.Barrier(len(contenders))
    results: list[Any] = [None] * len(contenders)

    def run(index: int, contender: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = contender()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.fixture
def submitted(committed_db: None) -> tuple[ImportRequest, Any, Any, Any]:
    if connection.vendor != "postgresql":
        pytest.skip("row locking between connections is tested on PostgreSQL; .ci/run runs this with DATABASE_URL")
    requester = make_user("rita", groups=(roles.REQUESTERS,))
    first, second = (make_user(name, groups=(roles.APPROVERS,)) for name in ("anna", "bert"))
    target = AwsTarget.objects.create(name="Sandbox", account_id="123456789012", region="us-east-1")
    request = pass_preflight(workflow.submit_request(requester=requester, fields=request_fields(target)))
    return request, requester, first, second


@pytest.mark.parametrize("rounds", [5])
def test_two_approvers_deciding_at_once_make_exactly_one_decision(submitted: Any, rounds: int) -> None:
    request, requester, anna, bert = submitted
    target = request.target
    for attempt in range(rounds):
        contested = pass_preflight(
            workflow.submit_request(
                requester=requester, fields=request_fields(target, image_name=f"contested-{attempt}")
            )
        )
        results = race(
            lambda pk=contested.pk: workflow.approve_request(request_id=pk, actor=anna, expected_version=1),
            lambda pk=contested.pk: workflow.reject_request(
                request_id=pk, actor=bert, expected_version=1, comment="No"
            ),
        )

        winners = [r for r in results if isinstance(r, ImportRequest)]
        losers = [r for r in results if isinstance(r, workflow.Conflict)]
        assert (len(winners), len(losers)) == (1, 1), results
        contested.refresh_from_db()
        assert contested.state == winners[0].state
        decisions = RequestEvent.objects.filter(request=contested).exclude(action__in=["submit", "preflight"])
        assert decisions.count() == 1
        decided_by = decisions.get().actor.username
        assert f"already {contested.get_state_display().lower()} by {decided_by}" in losers[0].message


def test_an_edit_racing_an_approval_never_lets_unseen_parameters_through(submitted: Any) -> None:
    request, requester, anna, _ = submitted

    results = race(
        lambda: workflow.approve_request(request_id=request.pk, actor=anna, expected_version=1),
        lambda: workflow.edit_request(
            request_id=request.pk, actor=requester, fields={"image_name": "changed-late"}, expected_version=1
        ),
    )

    assert sum(isinstance(r, ImportRequest) for r in results) == 1
    request.refresh_from_db()
    approval = RequestEvent.objects.filter(request=request, action="approve").first()
    if approval is not None:
        assert request.state == ImportRequest.State.APPROVED
        assert approval.data["parameters"] == request.aws_parameters()
        assert request.image_name == "win10-finance-2026"
    else:
        assert (request.state, request.version, request.image_name) == ("submitted", 2, "changed-late")


def test_concurrent_appends_keep_one_unbroken_chain(submitted: Any) -> None:
    from imports.audit import verify_chain

    request, requester, anna, bert = submitted
    target = request.target
    others = [
        pass_preflight(
            workflow.submit_request(requester=requester, fields=request_fields(target, image_name=f"other-{i}"))
        )
        for i in range(4)
    ]

    race(
        *[
            (lambda pk=r.pk, who=who: workflow.approve_request(request_id=pk, actor=who, expected_version=1))
            for r, who in zip(others, [anna, bert, anna, bert], strict=True)
        ]
    )

    assert verify_chain() == (14, [])

"""Approval policies per target: a quorum of distinct approvers, from the groups the target names."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from imports import forms, roles, selectors, workflow
from imports.models import AdminEvent, Approval, AwsTarget, Delegation, ImportRequest, RequestEvent
from imports.tests.conftest import make_user, pass_preflight, request_fields
from imports.tests.test_race import race

State = ImportRequest.State


@pytest.fixture
def quorum_target(target: AwsTarget) -> AwsTarget:
    target.approvals_required = 2
    target.save(update_fields=["approvals_required"])
    return target


@pytest.fixture
def carl(db: None) -> Any:
    return make_user("carl", groups=(roles.APPROVERS,))


def actions(request: ImportRequest) -> list[str]:
    return list(RequestEvent.objects.filter(request=request).order_by("seq").values_list("action", flat=True))


def approve(request: ImportRequest, by: Any, version: int = 1) -> ImportRequest:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return workflow.approve_request(request_id=request.pk, actor=by, expected_version=version)


def test_one_approver_is_enough_by_default(make_request: Any, approver: Any, published: list[Any]) -> None:
    request = make_request()

    approved = approve(request, approver)

    assert approved.state == State.APPROVED
    assert actions(request)[-1] == "approve"
    assert "approval" not in actions(request)
    assert ("import_request", (request.pk,)) in published


def test_a_quorum_waits_for_distinct_approvers_of_the_same_version(
    quorum_target: AwsTarget, make_request: Any, approver: Any, other_approver: Any, published: list[Any]
) -> None:
    request = make_request()

    first = approve(request, approver)

    assert first.state == State.SUBMITTED
    assert ("import_request", (request.pk,)) not in published
    given = RequestEvent.objects.get(request=request, action="approval")
    assert given.actor == approver
    # What this approver saw is bound to their approval, as the final one's is.
    assert given.data["version"] == 1
    assert given.data["parameters"] == request.aws_parameters()
    assert (given.data["approvals"], given.data["required"]) == (1, 2)

    second = approve(request, other_approver)

    assert second.state == State.APPROVED
    assert second.approver == other_approver
    final = RequestEvent.objects.get(request=request, action="approve")
    assert final.data["approvers"] == ["anna", "bert"]
    assert final.data["parameters"] == given.data["parameters"]
    assert published.count(("import_request", (request.pk,))) == 1


def test_the_same_approver_twice_counts_once_and_is_told(
    quorum_target: AwsTarget, make_request: Any, approver: Any
) -> None:
    request = make_request()
    approve(request, approver)

    with pytest.raises(workflow.WorkflowError) as refused:
        approve(request, approver)

    assert "You already approved version 1" in refused.value.message
    assert "1 more approval" in refused.value.message
    request.refresh_from_db()
    assert request.state == State.SUBMITTED
    assert actions(request).count("approval") == 1
    assert Approval.objects.filter(request=request).count() == 1


def test_an_edit_makes_a_version_nobody_has_approved(
    quorum_target: AwsTarget, make_request: Any, requester: Any, approver: Any, other_approver: Any
) -> None:
    request = make_request()
    approve(request, approver)
    workflow.edit_request(
        request_id=request.pk, actor=requester, fields={"image_description": "Changed"}, expected_version=1
    )
    edited = pass_preflight(ImportRequest.objects.get(pk=request.pk))

    # Anna's approval was of version 1: Bert's alone does not make the quorum for version 2.
    assert approve(edited, other_approver, version=2).state == State.SUBMITTED
    assert approve(edited, approver, version=2).state == State.APPROVED
    final = RequestEvent.objects.get(request=request, action="approve")
    assert final.data["version"] == 2
    assert final.data["approvers"] == ["bert", "anna"]


def test_any_rejection_ends_a_quorum(
    quorum_target: AwsTarget, make_request: Any, approver: Any, other_approver: Any
) -> None:
    request = make_request()
    approve(request, approver)

    rejected = workflow.reject_request(request_id=request.pk, actor=other_approver, expected_version=1, comment="No")

    assert rejected.state == State.REJECTED
    with pytest.raises(workflow.Conflict):
        approve(request, make_user("dora", groups=(roles.APPROVERS,)))


def test_only_approvers_in_the_targets_groups_decide(
    target: AwsTarget, make_request: Any, approver: Any, other_approver: Any
) -> None:
    production = Group.objects.create(name="Production approvers")
    target.approver_groups.add(production)
    other_approver.groups.add(production)
    request = make_request()

    with pytest.raises(workflow.NotAllowed) as refused:
        approve(request, approver)
    assert "decided by approvers in Production approvers only" in refused.value.message
    with pytest.raises(workflow.NotAllowed):
        workflow.reject_request(request_id=request.pk, actor=approver, expected_version=1, comment="No")
    assert list(selectors.approval_queue(approver)) == []
    assert list(selectors.approval_queue(other_approver)) == [request]

    assert approve(request, other_approver).state == State.APPROVED


def test_a_group_member_who_is_not_an_approver_cannot_decide(
    target: AwsTarget, make_request: Any, auditor: Any
) -> None:
    production = Group.objects.create(name="Production approvers")
    target.approver_groups.add(production)
    auditor.groups.add(production)

    with pytest.raises(workflow.NotAllowed):
        approve(make_request(), auditor)


def test_the_requester_never_counts_towards_a_quorum(
    quorum_target: AwsTarget, make_request: Any, approving_requester: Any, approver: Any
) -> None:
    request = make_request(by=approving_requester)

    with pytest.raises(workflow.NotAllowed) as refused:
        approve(request, approving_requester)

    assert refused.value.message == workflow.MSG_OWN_REQUEST
    assert not Approval.objects.filter(request=request).exists()


def test_the_database_refuses_an_approval_by_the_requester(make_request: Any, requester: Any, approver: Any) -> None:
    request = make_request()

    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(request=request, version=1, approver=requester, requester=requester)
    # Naming someone else as the requester to get past the check is refused too.
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(request=request, version=1, approver=requester, requester=approver)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(request=request, version=1, approver=approver, requester=approver)
    assert not Approval.objects.filter(request=request).exists()


def test_the_request_page_shows_who_approved_and_who_still_can(
    client: Any, quorum_target: AwsTarget, make_request: Any, approver: Any, other_approver: Any, carl: Any
) -> None:
    request = make_request()
    approve(request, approver)
    url = reverse("request_detail", args=[request.pk])

    client.force_login(approver)
    page = client.get(url).content.decode()
    assert "2 different approvers" in page
    assert "anna (" in page
    assert "version 1: 1 of 2" in page
    assert "Can still approve: bert, carl." in page
    # Anna approved: she is told what is missing, and may still reject, not approve again.
    assert 'id="approved-by-you"' in page
    assert ">Approve<" not in page
    assert "Reject" in page

    client.force_login(other_approver)
    page = client.get(url).content.decode()
    assert "Approve (2 of 2)" not in page  # the last approval needed is a plain approval
    assert ">Approve<" in page
    response = client.post(reverse("request_action", args=[request.pk, "approve"]), {"version": 1}, follow=True)
    assert "is approved; the import will start shortly" in response.content.decode()


def test_a_partial_approval_from_the_page_says_what_is_missing(
    client: Any, target: AwsTarget, make_request: Any, approver: Any
) -> None:
    target.approvals_required = 3
    target.save(update_fields=["approvals_required"])
    request = make_request()
    client.force_login(approver)

    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "Approve (1 of 3)" in page
    response = client.post(reverse("request_action", args=[request.pk, "approve"]), {"version": 1}, follow=True)

    assert "2 more approvals from other approvers needed" in response.content.decode()
    assert list(selectors.approval_queue(approver)) == []


# --- on PostgreSQL, with real connections ------------------------------------------------------


@pytest.mark.postgres
def test_two_approvals_at_once_complete_the_quorum_exactly_once(committed_db: None, published: list[Any]) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locking between connections is tested on PostgreSQL; .ci/run runs this with DATABASE_URL")
    requester = make_user("rita", groups=(roles.REQUESTERS,))
    anna, bert, carl = (make_user(name, groups=(roles.APPROVERS,)) for name in ("anna", "bert", "carl"))
    target = AwsTarget.objects.create(name="Prod", account_id="123456789012", region="us-east-1", approvals_required=2)
    for attempt in range(5):
        fields = request_fields(target, image_name=f"quorum-{attempt}")
        contested = pass_preflight(workflow.submit_request(requester=requester, fields=fields))

        # Two approvers at once, neither approval before: one is the first, the other completes.
        results = race(
            lambda pk=contested.pk: workflow.approve_request(request_id=pk, actor=anna, expected_version=1),
            lambda pk=contested.pk: workflow.approve_request(request_id=pk, actor=bert, expected_version=1),
        )
        assert all(isinstance(r, ImportRequest) for r in results), results
        assert actions(contested).count("approve") == 1
        assert actions(contested).count("approval") == 1
        assert ImportRequest.objects.get(pk=contested.pk).state == State.APPROVED
        assert published.count(("import_request", (contested.pk,))) == 1

        # One approval given: two more at once, and only one of them can be the second.
        fields = request_fields(target, image_name=f"quorum-late-{attempt}")
        late = pass_preflight(workflow.submit_request(requester=requester, fields=fields))
        workflow.approve_request(request_id=late.pk, actor=anna, expected_version=1)
        results = race(
            lambda pk=late.pk: workflow.approve_request(request_id=pk, actor=bert, expected_version=1),
            lambda pk=late.pk: workflow.approve_request(request_id=pk, actor=carl, expected_version=1),
        )
        winners = [r for r in results if isinstance(r, ImportRequest)]
        losers = [r for r in results if isinstance(r, workflow.Conflict)]
        assert (len(winners), len(losers)) == (1, 1), results
        assert "already approved by" in losers[0].message
        assert actions(late).count("approve") == 1
        assert published.count(("import_request", (late.pk,))) == 1


def test_a_policy_set_in_the_admin_is_in_the_admin_history(client: Any, target: AwsTarget) -> None:
    production = Group.objects.create(name="Production approvers")
    root = make_user("root", superuser=True)
    client.force_login(root)
    data = {
        **{field: getattr(target, field) for field in ("name", "account_id", "region", "credentials")},
        **{"role_arn": "", "external_id": "", "endpoint_url": "", "is_active": "on"},
        "approvals_required": "2",
        "approver_groups": [production.pk],
    }

    response = client.post(reverse("admin:imports_awstarget_change", args=[target.pk]), data)

    assert response.status_code == 302, response.content[:2000]
    target.refresh_from_db()
    assert target.approvals_required == 2
    assert list(target.approver_groups.all()) == [production]
    recorded = AdminEvent.objects.filter(object_type="imports.AwsTarget").order_by("seq")
    assert [(e.action, e.changes) for e in recorded if e.object_id == str(target.pk)][-2:] == [
        ("changed", {"approvals_required": [1, 2]}),
        ("added", {"approver_groups": ["Production approvers"]}),
    ]
    # More than five approvers is refused with a message, and nothing changes.
    response = client.post(
        reverse("admin:imports_awstarget_change", args=[target.pk]), {**data, "approvals_required": "6"}
    )
    assert response.status_code == 200
    assert "less than or equal to 5" in response.content.decode()
    target.refresh_from_db()
    assert target.approvals_required == 2


# --- stand-ins -----------------------------------------------------------------------------------


@pytest.fixture
def production(target: AwsTarget, approver: Any) -> Group:
    """The target is decided by the Production approvers only: Anna is one, Bert is not."""
    group = Group.objects.create(name="Production approvers")
    target.approver_groups.add(group)
    approver.groups.add(group)
    return group


def stand_in(approver: Any, by: Any, *, days: int = 3, starts: int = 0) -> Delegation:
    today = timezone.localdate()
    return workflow.name_stand_in(
        approver=approver,
        stand_in=by,
        starts_on=today + timedelta(days=starts),
        ends_on=today + timedelta(days=starts + days),
    )


def test_a_stand_in_decides_for_the_approver_and_the_history_says_so(
    client: Any, production: Group, make_request: Any, approver: Any, other_approver: Any
) -> None:
    request = make_request()
    with pytest.raises(workflow.NotAllowed):
        approve(request, other_approver)
    assert list(selectors.approval_queue(other_approver)) == []

    stand_in(approver, other_approver)
    # A fresh user object, as each page has: what one stands in for is read once per user object.
    bert = get_user_model().objects.get(pk=other_approver.pk)
    assert list(selectors.approval_queue(bert)) == [request]
    approved = approve(request, bert)

    assert approved.state == State.APPROVED
    final = RequestEvent.objects.get(request=request, action="approve")
    assert (final.actor, final.data["on_behalf_of"]) == (other_approver, "anna")
    given = Approval.objects.get(request=request)
    assert (given.approver, given.decided_by) == (approver, other_approver)
    client.force_login(approver)
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "<strong>bert</strong> for anna · Approved" in page


def test_a_stand_in_that_ends_mid_decision_decides_nothing(
    client: Any, production: Group, make_request: Any, approver: Any, other_approver: Any
) -> None:
    request = make_request()
    delegation = stand_in(approver, other_approver)
    client.force_login(other_approver)
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert ">Approve<" in page

    # Anna is back early and revokes it while Bert reads the request; then Bert presses Approve.
    workflow.revoke_stand_in(approver=approver, delegation_id=delegation.pk)
    response = client.post(reverse("request_action", args=[request.pk, "approve"]), {"version": 1})

    assert response.status_code == 403
    assert "stand in for none of them today" in response.content.decode()
    request.refresh_from_db()
    assert request.state == State.SUBMITTED
    assert not Approval.objects.filter(request=request).exists()
    assert actions(request) == ["submit", "preflight"]


def test_a_stand_in_past_its_last_day_or_not_yet_begun_gives_nothing(
    production: Group, make_request: Any, approver: Any, other_approver: Any
) -> None:
    request = make_request()
    stand_in(approver, other_approver, starts=1)
    Delegation.objects.create(
        approver=approver,
        stand_in=other_approver,
        starts_on=timezone.localdate() - timedelta(days=5),
        ends_on=timezone.localdate() - timedelta(days=1),
    )

    with pytest.raises(workflow.NotAllowed):
        approve(request, get_user_model().objects.get(pk=other_approver.pk))


def test_a_stand_in_never_approves_for_the_requester_nor_twice_for_a_quorum(
    production: Group, make_request: Any, approver: Any, other_approver: Any, carl: Any
) -> None:
    # Anna's own request: standing in for her gives Bert nothing on it.
    production.user_set.add(carl)
    anna_files = make_user("anna-requests", groups=(roles.REQUESTERS,))
    stand_in(approver, other_approver)
    bert = get_user_model().objects.get(pk=other_approver.pk)
    assert workflow.acting_for(bert, make_request(by=anna_files)) == approver
    approver.groups.add(Group.objects.get(name=roles.REQUESTERS))
    own = make_request(by=get_user_model().objects.get(pk=approver.pk))
    with pytest.raises(workflow.NotAllowed):
        approve(own, bert)

    # A quorum of two: Bert for Anna, then Carl; Bert cannot also give a second one.
    production_target = own.target
    production_target.approvals_required = 2
    production_target.save(update_fields=["approvals_required"])
    request = make_request()
    approve(request, bert)
    with pytest.raises(workflow.WorkflowError):
        approve(request, get_user_model().objects.get(pk=other_approver.pk))
    assert approve(request, carl).state == State.APPROVED
    assert RequestEvent.objects.get(request=request, action="approve").data["approvers"] == ["anna", "carl"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            request=request, version=1, approver=approver, decided_by=carl, requester=request.requester
        )


def test_an_approver_names_and_revokes_a_stand_in(
    client: Any, approver: Any, other_approver: Any, requester: Any
) -> None:
    client.force_login(approver)
    url = reverse("stand_ins")
    page = client.get(url).content.decode()
    # Only other approvers are offered.
    assert f'<option value="{other_approver.pk}">bert</option>' in page
    assert f'<option value="{approver.pk}">' not in page
    assert f'<option value="{requester.pk}">' not in page

    today = timezone.localdate()
    refused = client.post(
        url, {"stand_in": other_approver.pk, "starts_on": today - timedelta(days=1), "ends_on": today}
    )
    assert refused.status_code == 400
    assert forms.MSG_STAND_IN_PAST in refused.content.decode()
    refused = client.post(
        url, {"stand_in": other_approver.pk, "starts_on": today, "ends_on": today - timedelta(days=1)}
    )
    assert forms.MSG_STAND_IN_DAYS in refused.content.decode()
    refused = client.post(url, {"stand_in": requester.pk, "starts_on": today, "ends_on": today})
    assert refused.status_code == 400
    assert not Delegation.objects.exists()

    named = client.post(
        url, {"stand_in": other_approver.pk, "starts_on": today, "ends_on": today + timedelta(days=2)}, follow=True
    )
    assert "bert stands in for you from" in named.content.decode()
    delegation = Delegation.objects.get()
    assert workflow.standing_in_for(get_user_model().objects.get(pk=other_approver.pk)) == [approver]

    client.force_login(other_approver)
    assert "You stand in for" in client.get(url).content.decode()
    # Only the approver who named a stand-in revokes it.
    client.post(reverse("stand_in_revoke", args=[delegation.pk]))
    assert Delegation.objects.get().revoked_at is None

    client.force_login(approver)
    revoked = client.post(reverse("stand_in_revoke", args=[delegation.pk]), follow=True)
    assert "bert no longer stands in for you" in revoked.content.decode()
    assert workflow.standing_in_for(get_user_model().objects.get(pk=other_approver.pk)) == []


def test_a_requester_has_no_stand_ins(client: Any, requester: Any) -> None:
    client.force_login(requester)
    assert client.get(reverse("stand_ins")).status_code == 403


def test_the_approvers_told_of_a_request_are_those_who_may_decide_it(
    production: Group, make_request: Any, approver: Any, other_approver: Any, carl: Any
) -> None:
    request = make_request()
    assert list(selectors.approvers_for(request)) == [approver]

    stand_in(approver, carl)
    assert list(selectors.approvers_for(request)) == [approver, carl]

    request.target.approver_groups.clear()
    assert list(selectors.approvers_for(request)) == [approver, other_approver, carl]


def test_the_dashboard_counts_what_waits_for_this_approver(
    client: Any, production: Group, make_request: Any, approver: Any, other_approver: Any
) -> None:
    make_request()
    client.force_login(other_approver)
    page = client.get(reverse("dashboard"))
    assert page.context["queue_size"] == 0
    assert page.context["queue"] == []

    stand_in(approver, other_approver)
    page = client.get(reverse("dashboard"))
    assert page.context["queue_size"] == 1
    assert len(page.context["queue"]) == 1

    client.force_login(approver)
    assert client.get(reverse("dashboard")).context["queue_size"] == 1


def test_the_dashboard_leaves_out_what_waits_for_the_other_approvers_and_ones_own(
    client: Any, quorum_target: AwsTarget, make_request: Any, approver: Any, approving_requester: Any
) -> None:
    first, second = make_request(), make_request()
    make_request(by=approving_requester)
    client.force_login(approver)
    assert client.get(reverse("dashboard")).context["queue_size"] == 3

    approve(first, approver)
    page = client.get(reverse("dashboard"))
    assert page.context["queue_size"] == 2
    assert first not in page.context["queue"]

    client.force_login(approving_requester)
    # Two others' requests wait for Maria; her own never does.
    assert client.get(reverse("dashboard")).context["queue_size"] == 2
    assert second in selectors.approval_queue(approving_requester)

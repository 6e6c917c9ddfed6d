"""The Django admin: targets are editable, requests and their audit history are read-only."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from imports.models import AwsTarget, ImportRequest, RequestEvent


@pytest.fixture
def admin_client_(client: Client, superuser: Any) -> Client:
    client.force_login(superuser)
    return client


def test_an_admin_finds_a_request_by_reference_with_its_audit_history(admin_client_: Client, make_request: Any) -> None:
    request = make_request(image_name="findable-image")
    make_request(image_name="other-image")

    listing = admin_client_.get(reverse("admin:imports_importrequest_changelist"), {"q": request.reference})
    page = admin_client_.get(reverse("admin:imports_importrequest_change", args=[request.pk]))

    assert listing.status_code == 200
    assert "findable-image" in listing.content.decode()
    assert "other-image" not in listing.content.decode()
    assert page.status_code == 200
    body = page.content.decode()
    assert "Request events" in body or "request event" in body.lower()
    assert "submit" in body
    assert reverse("request_detail", args=[request.pk]) in body


@pytest.mark.parametrize("model", ["importrequest", "requestevent"])
def test_nobody_can_add_change_or_delete_requests_or_events_in_the_admin(
    admin_client_: Client, make_request: Any, model: str
) -> None:
    request = make_request(checked=False)
    obj_id = request.pk if model == "importrequest" else request.events.get().pk
    event_before = RequestEvent.objects.values().get()

    add = admin_client_.get(reverse(f"admin:imports_{model}_add"))
    change = admin_client_.post(reverse(f"admin:imports_{model}_change", args=[obj_id]), {"comment": "x"})
    delete = admin_client_.post(reverse(f"admin:imports_{model}_delete", args=[obj_id]), {"post": "yes"})
    bulk = admin_client_.post(
        reverse(f"admin:imports_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": [obj_id], "post": "yes"},
    )

    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk.status_code in {200, 302}
    assert ImportRequest.objects.filter(pk=request.pk).exists()
    assert RequestEvent.objects.values().get() == event_before


def test_the_event_page_is_view_only_for_a_superuser(admin_client_: Client, make_request: Any) -> None:
    event = make_request(checked=False).events.get()

    page = admin_client_.get(reverse("admin:imports_requestevent_change", args=[event.pk])).content.decode()

    assert "Save" not in page
    assert "Delete" not in page
    assert event.hash in page


def test_an_admin_adds_a_target_that_assumes_a_role(admin_client_: Client) -> None:
    response = admin_client_.post(
        reverse("admin:imports_awstarget_add"),
        {
            "name": "Production eu-west-1",
            "account_id": "111122223333",
            "region": "eu-west-1",
            "is_active": "on",
            "credentials": "assume_role",
            "role_arn": "arn:aws:iam::111122223333:role/WorkSpacesImport",
            "external_id": "portal-ext-id",
            "endpoint_url": "",
            "approvals_required": "1",
        },
    )

    assert response.status_code == 302
    target = AwsTarget.objects.get()
    assert (target.credentials, target.byop_allowed) == ("assume_role", False)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"account_id": "12345"}, "exactly 12 digits"),
        ({"region": "Europe"}, "region code"),
        ({"credentials": "assume_role", "role_arn": ""}, "Enter the IAM role ARN to assume."),
        ({"credentials": "assume_role", "role_arn": "arn:aws:iam::999999999999:role/X"}, "target&#x27;s account"),
        ({"role_arn": "not-an-arn"}, "Enter a role ARN"),
    ],
)
def test_a_target_with_bad_values_is_refused_with_a_message(
    admin_client_: Client, fields: dict[str, str], message: str
) -> None:
    data = {
        "name": "T",
        "account_id": "111122223333",
        "region": "eu-west-1",
        "credentials": "default",
        "role_arn": "",
        "external_id": "",
        "endpoint_url": "",
    } | fields

    response = admin_client_.post(reverse("admin:imports_awstarget_add"), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AwsTarget.objects.exists()


@pytest.mark.parametrize("role", ["requester", "approver", "auditor"])
def test_portal_roles_do_not_get_into_the_admin(client: Client, role: str, request: Any) -> None:
    client.force_login(request.getfixturevalue(role))

    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert "login" in response.url


@pytest.mark.parametrize(
    "query", ["created_at__year=9999", "created_at__year=-1", "created_at__year=2026&created_at__month=13"]
)
def test_an_impossible_date_in_the_request_changelist_is_an_invalid_lookup_not_an_error(
    client: Client, superuser: Any, make_request: Any, query: str
) -> None:
    make_request()
    client.force_login(superuser)

    response = client.get(f"{reverse('admin:imports_importrequest_changelist')}?{query}")

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")

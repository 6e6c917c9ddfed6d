"""An approver's stand-ins: named for a range of days, listed, revoked; and whom one stands in for."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from imports import roles, workflow
from imports.forms import DelegationForm
from imports.models import Delegation

MSG_NAMED = "{stand_in} stands in for you from {starts_on} to {ends_on}."
MSG_REVOKED = "{stand_in} no longer stands in for you."


def _approver(request: HttpRequest) -> None:
    if not roles.has_role(request.user, roles.APPROVERS):
        raise PermissionDenied(workflow.MSG_NOT_ALLOWED)


@require_http_methods(["GET", "HEAD", "POST"])
def stand_ins(request: HttpRequest) -> HttpResponse:
    _approver(request)
    form = DelegationForm(request.POST if request.method == "POST" else None, approver=request.user)
    if form.is_valid():
        try:
            named = workflow.name_stand_in(approver=request.user, **form.cleaned_data)
        except workflow.WorkflowError as refused:
            form.add_error("stand_in", refused.message)
        else:
            messages.success(
                request,
                MSG_NAMED.format(
                    stand_in=named.stand_in.get_username(), starts_on=named.starts_on, ends_on=named.ends_on
                ),
            )
            return redirect("stand_ins")
    today = timezone.localdate()
    current = Q(revoked_at__isnull=True, ends_on__gte=today)
    mine = Delegation.objects.filter(approver=request.user).select_related("stand_in")
    context = {
        "form": form,
        "today": today,
        "named": mine.filter(current).order_by("starts_on", "id"),
        "earlier": mine.exclude(current)[:20],
        "standing_in": Delegation.objects.filter(current, stand_in=request.user)
        .select_related("approver")
        .order_by("starts_on"),
    }
    return render(request, "imports/stand_ins.html", context, status=400 if form.errors else 200)


@require_POST
def stand_in_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _approver(request)
    try:
        revoked = workflow.revoke_stand_in(approver=request.user, delegation_id=pk)
    except workflow.WorkflowError as gone:
        messages.error(request, gone.message)
    else:
        messages.success(request, MSG_REVOKED.format(stand_in=revoked.stand_in.get_username()))
    return redirect("stand_ins")

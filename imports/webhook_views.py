"""A person's own webhooks: told about the requests they may see (imports.webhooks.may_see),
made with their signing secret shown once, listed with their recent deliveries, deleted."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from imports.forms import WebhookForm
from imports.models import WebhookDelivery, WebhookSubscription

MSG_DELETED = "The webhook {name} is deleted, with its deliveries: it is told nothing more."
RECENT_DELIVERIES = 20


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def my_webhooks(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = WebhookForm(data, instance=WebhookSubscription(owner=request.user))
    made = None
    if form.is_valid():
        made = form.save()
        form = WebhookForm()
    context = {
        "form": form,
        "made": made,
        "webhooks": WebhookSubscription.objects.filter(owner=request.user),
        "deliveries": WebhookDelivery.objects.filter(subscription__owner=request.user)
        .select_related("subscription", "request")
        .order_by("-created_at", "-id")[:RECENT_DELIVERIES],
    }
    return render(request, "imports/webhooks.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def delete_webhook(request: HttpRequest, pk: int) -> HttpResponse:
    webhook = WebhookSubscription.objects.filter(pk=pk, owner=request.user).first()
    if webhook is None:
        raise Http404("No such webhook of yours.")
    webhook.delete()
    messages.success(request, MSG_DELETED.format(name=webhook.name))
    return redirect("my_webhooks")

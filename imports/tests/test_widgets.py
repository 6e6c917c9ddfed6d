"""The widgets and the date filter that write their HTML in Python write what Django's own
templates write, byte for byte: the same markup, attributes, escaping and time zone."""

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django import forms
from django.template import Context, Template
from django.template.defaultfilters import date as django_date
from django.test import override_settings
from django.utils import timezone

from imports.templatetags.timestamps import FORMATS, timestamp
from imports.widgets import PlainDateInput, PlainSelect, PlainTextInput

CHOICES = [("", "Any <state>"), ("a&b", 'Quoted "a" & b'), (3, "Three")]
GROUPED = [("", "None"), ("Fruit <b>", [("apple", "Apple"), ("pear", "Pear")]), ("other", "Other")]


class PlainForm(forms.Form):
    text = forms.CharField(max_length=10, widget=PlainTextInput(attrs={"placeholder": 'say "hi" <now>'}))
    day = forms.DateField(required=False, widget=PlainDateInput(attrs={"type": "date", "class": "form-control"}))
    pick = forms.ChoiceField(choices=CHOICES, required=False, widget=PlainSelect(attrs={"class": "form-select"}))
    grouped = forms.ChoiceField(choices=GROUPED, widget=PlainSelect)


class DjangoForm(forms.Form):
    text = forms.CharField(max_length=10, widget=forms.TextInput(attrs={"placeholder": 'say "hi" <now>'}))
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}))
    pick = forms.ChoiceField(choices=CHOICES, required=False, widget=forms.Select(attrs={"class": "form-select"}))
    grouped = forms.ChoiceField(choices=GROUPED, widget=forms.Select)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"text": 'x"<y>&', "day": "2026-11-28", "pick": "a&b", "grouped": "pear"},
        {"text": "far too long for ten", "day": "not a day", "pick": "nothing", "grouped": ""},
        {"text": "ok", "pick": "3", "grouped": "other"},
    ],
)
def test_plain_widgets_write_what_djangos_templates_write(data: dict[str, str] | None) -> None:
    plain, django = PlainForm(data), DjangoForm(data)
    if data is not None:
        plain.is_valid(), django.is_valid()

    for name in DjangoForm.base_fields:
        assert str(plain[name]) == str(django[name]), name


def test_a_plain_select_marks_the_chosen_option_and_escapes_what_it_writes() -> None:
    html = str(PlainForm({"pick": "a&b"})["pick"])

    assert '<option value="a&amp;b" selected>Quoted &quot;a&quot; &amp; b</option>' in html
    assert '<option value="">Any &lt;state&gt;</option>' in html


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize(
    "value", [datetime(2026, 3, 29, 0, 59, 7, 12, tzinfo=UTC), datetime(9, 1, 2, 3, 4, 5, tzinfo=UTC)]
)
def test_timestamp_writes_what_djangos_date_filter_writes_in_the_current_time_zone(value: datetime, zone: str) -> None:
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        local = timezone.localtime(value)
        for format_ in FORMATS:
            assert timestamp(local, format_) == django_date(local, format_), format_


@pytest.mark.parametrize(
    ("value", "format_"),
    [(None, "c"), ("", "Y-m-d"), (date(2026, 11, 28), "Y-m-d"), (datetime(2026, 1, 2, tzinfo=UTC), "D j M")],
)
def test_timestamp_hands_anything_else_to_djangos_date_filter(value: Any, format_: str) -> None:
    assert timestamp(value, format_) == django_date(value, format_)


def test_timestamp_in_a_template_shows_the_time_in_the_portals_time_zone() -> None:
    page = Template(
        '{% load timestamps %}{{ at|timestamp:"Y-m-d H:i:s" }} {{ at|timestamp:"c" }}|'
        '{{ at|date:"Y-m-d H:i:s" }} {{ at|date:"c" }}'
    )
    with override_settings(TIME_ZONE="Europe/Berlin"), timezone.override("Europe/Berlin"):
        ours, djangos = page.render(Context({"at": datetime(2026, 7, 1, 22, 30, tzinfo=UTC)})).split("|")

    assert ours == djangos == "2026-07-02 00:30:00 2026-07-02T00:30:00+02:00"


# What templates/imports/_request_table.html wrote for each row before request_rows wrote them
# (its blank line where the requester column is left out aside).
ROW_TEMPLATE = (
    "{% load timestamps %}{% for r in requests %}\n"
    "    <tr>\n"
    '      <td><a class="text-nowrap" href="{% url \'request_detail\' r.pk %}">{{ r.reference }}</a>\n'
    '        <div class="d-sm-none small text-break">{{ r.image_name }}'
    "{% if show_requester %} · {{ r.requester.get_username }}{% endif %}</div></td>\n"
    '      <td class="text-break d-none d-sm-table-cell">{{ r.image_name }}</td>\n'
    '      <td class="d-none d-sm-table-cell">{{ r.target.name }}</td>\n'
    '      {% if show_requester %}<td class="d-none d-sm-table-cell">{{ r.requester.get_username }}</td>\n'
    "      {% endif %}"
    '<td><span class="badge state-badge state-{{ r.state }}">{{ r.get_state_display }}</span>'
    '{% if r.rollout %} <span class="badge rollout-badge rollout-{{ r.rollout }}">{{ r.get_rollout_display }}</span>'
    "{% endif %}"
    '{% if r.state == "importing" and r.import_progress is not None %} <span class="small text-nowrap">'
    "{{ r.stage_label }}, {{ r.import_progress }}%</span>{% endif %}</td>\n"
    '      <td class="d-none d-sm-table-cell"><time datetime="{{ r.created_at|timestamp:\'c\' }}">'
    '{{ r.created_at|timestamp:"Y-m-d H:i" }}</time></td>\n'
    "    </tr>{% endfor %}"
)


def listed_requests() -> list[Any]:
    from django.contrib.auth.models import User

    from imports.models import AwsTarget, ImportRequest

    target = AwsTarget(pk=3, name='Prod <"eu"> & co')
    rows = [
        dict(pk=7, state="submitted", image_name="win11-<b>finance</b>", requester="anna&<x>"),
        dict(pk=123456, state="importing", import_stage="VALIDATING", import_progress=40, requester="bert"),
        dict(pk=42, state="importing", import_stage="", import_progress=None, requester="carl"),
        dict(pk=9, state="available", rollout="incomplete", requester="dora"),
        dict(pk=10, state="failed", rollout="running", image_name="a'b\"c", requester="eve"),
    ]
    made = []
    for i, row in enumerate(rows):
        requester = User(pk=100 + i, username=row.pop("requester"))
        row.setdefault("image_name", f"win10-image-{i}")
        made.append(
            ImportRequest(
                target=target, requester=requester, created_at=datetime(2026, 3, 29, 0, 30 + i, 5, tzinfo=UTC), **row
            )
        )
    return made


@pytest.mark.parametrize("show_requester", [True, False])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_request_rows_write_what_the_tables_template_wrote(show_requester: bool, zone: str) -> None:
    from imports.templatetags.request_table import request_rows

    requests = listed_requests()
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        expected = Template(ROW_TEMPLATE).render(Context({"requests": requests, "show_requester": show_requester}))
        written = request_rows(requests, show_requester)

    assert written == expected
    assert "&lt;b&gt;finance&lt;/b&gt;" in written
    assert "<b>" not in written
    assert ("anna&amp;&lt;x&gt;" in written) is show_requester
    assert '<span class="small text-nowrap">' in written
    assert "/requests/123456/" in written


# What templates/imports/request_detail.html wrote for each event before event_timeline wrote them.
EVENT_TEMPLATE = (
    "{% load timestamps %}{% for event in events %}\n"
    '        <li class="timeline-event">\n'
    "          <div><strong>{{ event.actor_name }}</strong>"
    "{% if event.data.on_behalf_of %} for {{ event.data.on_behalf_of }}{% endif %} · {{ event.action_label }}\n"
    "            {% if event.from_state != event.to_state %}"
    '<span class="text-body-secondary small">({{ event.from_state_label|capfirst }} → {{ event.to_state_label }})'
    "</span>{% endif %}\n"
    "          </div>\n"
    '          <div class="small text-body-secondary"><time datetime="{{ event.created_at|timestamp:\'c\' }}">'
    '{{ event.created_at|timestamp:"Y-m-d H:i:s" }}</time></div>\n'
    "          {% if event.comment %}"
    '<blockquote class="mb-1 preserve-lines text-break">{{ event.comment }}</blockquote>{% endif %}\n'
    '          {% if event.data %}<details><summary class="small">Details</summary>'
    '<pre class="small bg-body-tertiary p-2"><code>{{ event.data|pprint }}</code></pre></details>{% endif %}\n'
    "        </li>\n"
    "        {% endfor %}"
)


def listed_events() -> list[Any]:
    from django.contrib.auth.models import User

    from imports.models import RequestEvent

    long_data = {"parameters": {f"key{i}": "v" * 20 for i in range(8)}, "note": "<script>x</script>"}
    rows = [
        dict(actor_username="anna<&>", action="submit", from_state="", to_state="submitted", data={}),
        dict(
            actor_username="bert",
            action="approve",
            from_state="submitted",
            to_state="approved",
            comment='Fine by me "<b>"\nsecond line',
            data={"on_behalf_of": "anna<&>", "approvers": ["anna", "bert"]},
        ),
        dict(actor_username="", actor=User(pk=5, username="old<user>"), action="retry_import", data=long_data),
        dict(actor_username="", action="made_up_action", from_state="importing", to_state="importing", data=[1, 2]),
    ]
    made = []
    for i, row in enumerate(rows):
        row.setdefault("from_state", "importing")
        row.setdefault("to_state", "importing")
        made.append(RequestEvent(seq=i + 1, created_at=datetime(2026, 10, 25, 0, 59, 30 + i, tzinfo=UTC), **row))
    return made


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_event_timeline_writes_what_the_request_pages_template_wrote(zone: str) -> None:
    from imports.templatetags.timeline import event_timeline

    events = listed_events()
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        expected = Template(EVENT_TEMPLATE).render(Context({"events": events}))
        written = event_timeline(events)

    assert written == expected
    assert "&lt;script&gt;" in written
    assert " for anna&lt;&amp;&gt; · " in written
    assert "<strong>old&lt;user&gt;</strong>" in written

import re
from collections.abc import Iterator
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django_filters.fields import ModelChoiceField, ModelChoiceIterator

from imports.models import AwsTarget, ImportRequest
from imports.paging import among
from imports.rules import Rollout
from imports.selectors import ROLLOUT_OPEN
from imports.widgets import PlainDateInput, PlainSelect, PlainTextInput

ROLLOUT_NOT_FINISHED = "open"
# A search matching more user names than this finds the requests of the first ones only (and
# every request whose other columns match).
MAX_SEARCHED_REQUESTERS = 100
REFERENCE_RE = re.compile(r"^\s*(?:IMP-)?0*([0-9]{1,12})\s*$", re.IGNORECASE)
# How long a process may show a target's old name in the list's filter after a change made in
# another process that does not share its cache (the embedded set-up).
TARGET_CHOICES_KEY = "request-list-target-choices"
TARGET_CHOICES_SECONDS = 60


class CachedTargetChoices(ModelChoiceIterator):
    """The target filter's choices, from the cache: targets are added or renamed in the admin
    now and then, and the list draws them on every view. Read with one plain query when the
    cache has none (Django reads them through QuerySet.iterator(): on PostgreSQL a server-side
    cursor, three round trips for a handful of rows)."""

    def __iter__(self) -> Iterator[tuple[Any, str]]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        yield from self._targets()

    def __len__(self) -> int:
        return len(self._targets()) + (self.field.empty_label is not None)

    def _targets(self) -> list[tuple[int, str]]:
        targets = cache.get(TARGET_CHOICES_KEY)
        if targets is None:
            targets = [(target.pk, self.field.label_from_instance(target)) for target in self.queryset]
            cache.set(TARGET_CHOICES_KEY, targets, TARGET_CHOICES_SECONDS)
        return targets


def forget_target_choices(**kwargs: Any) -> None:
    """On a target's change: this process, and every process when they share the cache
    (PORTAL_CACHE_URL), reads the choices afresh."""
    cache.delete(TARGET_CHOICES_KEY)


class TargetField(ModelChoiceField):
    iterator = CachedTargetChoices


class TargetFilter(django_filters.ModelChoiceFilter):
    field_class = TargetField


class RequestFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        max_length=100,
        widget=PlainTextInput(attrs={"placeholder": "Reference, image name, AMI, requester…", "class": "form-control"}),
    )
    state = django_filters.ChoiceFilter(
        choices=ImportRequest.State.choices,
        empty_label="Any state",
        widget=PlainSelect(attrs={"class": "form-select"}),
    )
    # What a target's option shows (its str): not its credentials' columns.
    target = TargetFilter(
        queryset=AwsTarget.objects.only("name", "account_id", "region"),
        empty_label="Any target",
        widget=PlainSelect(attrs={"class": "form-select"}),
    )
    # A user name, not a list of everyone who ever filed a request: that list took a DISTINCT
    # over every request on each page, and would not fit a drop-down at thousands of people.
    requester = django_filters.CharFilter(
        method="by_requester",
        label="Requester",
        max_length=150,
        widget=PlainTextInput(attrs={"placeholder": "User name", "autocomplete": "off", "class": "form-control"}),
    )
    # Only what the partial index request_rollout_open holds: each choice reads it alone.
    rollout = django_filters.ChoiceFilter(
        label="Rollout",
        method="by_rollout",
        choices=[
            (ROLLOUT_NOT_FINISHED, "Not finished (running or incomplete)"),
            (Rollout.RUNNING.value, "Rollout running"),
            (Rollout.INCOMPLETE.value, "Rollout incomplete (a step failed)"),
        ],
        empty_label="Any rollout",
        widget=PlainSelect(attrs={"class": "form-select"}),
    )
    created_from = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__gte",
        label="Created from",
        widget=PlainDateInput(attrs={"type": "date", "class": "form-control"}),
    )
    created_to = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__lte",
        label="Created until",
        widget=PlainDateInput(attrs={"type": "date", "class": "form-control"}),
    )

    class Meta:
        model = ImportRequest
        fields = ["q", "state", "target", "requester", "rollout", "created_from", "created_to"]

    def by_rollout(self, queryset: QuerySet[ImportRequest], name: str, value: str) -> QuerySet[ImportRequest]:
        return queryset.filter(rollout__in=ROLLOUT_OPEN if value == ROLLOUT_NOT_FINISHED else [value])

    def by_requester(self, queryset: QuerySet[ImportRequest], name: str, value: str) -> QuerySet[ImportRequest]:
        # The user is looked up first (a small table): the page then reads the (requester,
        # created_at, id) index from the top. Joined on the name instead, the database walked
        # every request newer than the requester's (all 100,000 for one who filed none).
        users = get_user_model().objects.filter(username__iexact=value.strip()).values_list("pk", flat=True)
        return queryset.filter(requester__in=list(users))

    def search(self, queryset: QuerySet[ImportRequest], name: str, value: str) -> QuerySet[ImportRequest]:
        text = value.strip()
        if not text:
            return queryset
        # Each column has a trigram index on PostgreSQL (migration 0010) that serves icontains.
        # The requesters are a list the database makes first (a small table), so the OR below
        # stays on one table and the database can combine its indexes instead of scanning every
        # request.
        requesters = get_user_model().objects.filter(username__icontains=text).values("pk")
        match = Q(image_name__icontains=text) | Q(ec2_image_id__icontains=text) | Q(aws_image_id__icontains=text)
        match |= among("requester", requesters[:MAX_SEARCHED_REQUESTERS], rows=queryset)
        match |= Q(image_description__icontains=text)
        reference = REFERENCE_RE.match(text)
        if reference:
            match |= Q(pk=int(reference.group(1)))
        return queryset.filter(match)

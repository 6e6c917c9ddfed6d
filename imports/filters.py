import re

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from imports.models import AwsTarget, ImportRequest

REFERENCE_RE = re.compile(r"^\s*(?:IMP-)?0*([0-9]{1,12})\s*$", re.IGNORECASE)


class RequestFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Reference, image name, AMI, requester…"}),
    )
    state = django_filters.ChoiceFilter(choices=ImportRequest.State.choices, empty_label="Any state")
    target = django_filters.ModelChoiceFilter(queryset=AwsTarget.objects.all(), empty_label="Any target")
    requester = django_filters.ModelChoiceFilter(
        queryset=get_user_model().objects.filter(import_requests__isnull=False).distinct().order_by("username"),
        empty_label="Anyone",
    )
    created_from = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__gte",
        label="Created from",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    created_to = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__lte",
        label="Created until",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = ImportRequest
        fields = ["q", "state", "target", "requester", "created_from", "created_to"]

    def search(self, queryset: QuerySet[ImportRequest], name: str, value: str) -> QuerySet[ImportRequest]:
        text = value.strip()
        if not text:
            return queryset
        match = Q(image_name__icontains=text) | Q(ec2_image_id__icontains=text) | Q(aws_image_id__icontains=text)
        match |= Q(requester__username__icontains=text) | Q(image_description__icontains=text)
        reference = REFERENCE_RE.match(text)
        if reference:
            match |= Q(pk=int(reference.group(1)))
        return queryset.filter(match)

"""/api/v1/: the API, its OpenAPI document, and Swagger UI on it.

DRF's views are left out of the site's log-in middleware (DRF marks them login_required =
False): they answer a missing or bad token themselves, with a 401 in the API's error shape,
rather than a redirect to the log-in page. The docs page is for people and stays behind log-in.
"""

from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated

from imports.api import views
from imports.api.auth import TokenAuthentication

app_name = "api"

urlpatterns = [
    path("targets/", views.TargetList.as_view(), name="target_list"),
    path("targets/<str:pk>/", views.TargetDetail.as_view(), name="target_detail"),
    path("requests/", views.RequestList.as_view(), name="request_list"),
    path("requests/<str:pk>/", views.RequestDetail.as_view(), name="request_detail"),
    path("requests/<str:pk>/history/", views.RequestHistory.as_view(), name="request_history"),
    path("requests/<str:pk>/decision/", views.RequestDecision.as_view(), name="request_decision"),
    path("requests/<str:pk>/cancel/", views.RequestCancel.as_view(), name="request_cancel"),
    path("requests/<str:pk>/retry/", views.RequestRetry.as_view(), name="request_retry"),
    path("requests/<str:pk>/recheck/", views.RequestRecheck.as_view(), name="request_recheck"),
    # The document, for a token (a client generator) or a signed-in person (the docs page); GET
    # only. JSON unless YAML is asked for (?format=yaml), so that its errors are JSON too.
    path(
        "schema/",
        SpectacularAPIView.as_view(
            authentication_classes=[TokenAuthentication, SessionAuthentication],
            permission_classes=[IsAuthenticated],
            renderer_classes=[OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2],
        ),
        name="schema",
    ),
    path(
        "docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(
                url_name="api:schema",
                authentication_classes=[SessionAuthentication],
                permission_classes=[IsAuthenticated],
                template_name="imports/api_docs.html",
            )
        ),
        name="docs",
    ),
]

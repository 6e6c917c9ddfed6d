from django.contrib import admin
from django.urls import include, path

from imports.accounts import sign_in_urlpatterns

urlpatterns = [
    *sign_in_urlpatterns(),
    path("admin/", admin.site.urls),
    path("", include("imports.urls")),
]

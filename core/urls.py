from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.views import LoginView
from api.app import api as token_api
from core import health

admin.site.site_header = admin.site.site_title = "Tapeline admin"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", include("streaming.urls")),  # /metrics
    path(
        "login/",
        LoginView.as_view(),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/", token_api.urls),  # the token API, /api/docs, bars for charts
    path("preferences/tokens/", include("api.urls")),
    path("preferences/security/", include("audit.urls")),
    path("preferences/", include("preferences.urls")),
    path("", include("dashboard.urls")),
]

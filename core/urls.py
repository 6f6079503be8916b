from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from core import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", include("streaming.urls")),  # /metrics
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("marketdata.urls")),
    path("preferences/", include("preferences.urls")),
    path("", include("dashboard.urls")),
]

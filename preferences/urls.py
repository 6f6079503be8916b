from __future__ import annotations

from django.urls import path

from preferences import views

app_name = "preferences"

urlpatterns = [
    path("", views.preferences_page, name="page"),
    path("theme", views.theme_set, name="theme"),
]

"""Alert pages, included from dashboard/urls.py (names live in the
`dashboard` namespace: `dashboard:alerts`, `dashboard:alert_edit`, ...)."""

from __future__ import annotations

from django.urls import path

from dashboard import alerts_views as views
from dashboard import channels_views

urlpatterns = [
    path("alerts/", views.alerts_index, name="alerts"),
    path("alerts/new", views.alert_create, name="alert_create"),
    path("alerts/unseen", views.alerts_unseen, name="alerts_unseen"),
    path("alerts/seen", views.alerts_seen, name="alerts_seen"),
    path("alerts/<int:pk>/edit", views.alert_edit, name="alert_edit"),
    path("alerts/<int:pk>/delete", views.alert_delete, name="alert_delete"),
    path("alerts/<int:pk>/toggle", views.alert_toggle, name="alert_toggle"),
    path("alerts/<int:pk>/test", views.alert_dry_run, name="alert_dry_run"),
    path("alerts/channels/", channels_views.channels_index, name="alert_channels"),
    path(
        "alerts/channels/<int:pk>/edit",
        channels_views.channel_edit,
        name="alert_channel_edit",
    ),
    path(
        "alerts/channels/<int:pk>/test",
        channels_views.channel_test,
        name="alert_channel_test",
    ),
    path(
        "alerts/channels/<int:pk>/toggle",
        channels_views.channel_toggle,
        name="alert_channel_toggle",
    ),
    path(
        "alerts/channels/<int:pk>/delete",
        channels_views.channel_remove,
        name="alert_channel_delete",
    ),
]

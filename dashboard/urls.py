from __future__ import annotations

from django.urls import include, path

from dashboard import anomaly_views, chart_views, status_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("", include("dashboard.alerts_urls")),
    path("instruments/<path:symbol>/", views.instrument_detail, name="instrument"),
    path("portfolio/", include("dashboard.portfolio_urls")),
    path("chart/settings", chart_views.chart_settings_save, name="chart_settings"),
    path("export/bars.csv", chart_views.bars_export, name="bars_export"),
    path(
        "watchlists/<int:pk>/export.csv",
        chart_views.watchlist_export,
        name="watchlist_export",
    ),
    path("status/", status_views.system_status, name="status"),
    path("anomalies/", anomaly_views.anomalies_index, name="anomalies"),
    path("api/search", views.search, name="search"),
    path("watchlists/create", views.watchlist_create, name="watchlist_create"),
    path("watchlists/reorder", views.watchlist_reorder, name="watchlist_reorder"),
    path("watchlists/<int:pk>/rename", views.watchlist_rename, name="watchlist_rename"),
    path("watchlists/<int:pk>/delete", views.watchlist_delete, name="watchlist_delete"),
    path("watchlists/<int:pk>/items/add", views.item_add, name="item_add"),
    path("watchlists/<int:pk>/items/remove", views.item_remove, name="item_remove"),
    path("watchlists/<int:pk>/items/reorder", views.item_reorder, name="item_reorder"),
]

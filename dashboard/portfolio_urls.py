from __future__ import annotations

from django.urls import path

from dashboard import portfolio_views as views

urlpatterns = [
    path("", views.portfolio, name="portfolio"),
    path("<int:pk>/", views.position_detail, name="position"),
    path("<int:pk>/close", views.position_close, name="position_close"),
    path("<int:pk>/delete", views.position_delete, name="position_delete"),
    path("transactions/add", views.transaction_add, name="transaction_add"),
    path("transactions/<int:pk>/edit", views.transaction_edit, name="transaction_edit"),
    path(
        "transactions/<int:pk>/delete",
        views.transaction_delete,
        name="transaction_delete",
    ),
    path("transactions/import", views.transactions_import, name="transactions_import"),
    path(
        "transactions/export.csv", views.transactions_export, name="transactions_export"
    ),
]

"""The anomalies page: market anomalies the stream worker detected
(`marketdata.anomalies`), filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.forms import AnomalyFilterForm
from marketdata.anomalies import ANOMALY_KINDS
from marketdata.selectors import anomalies_filtered

PER_PAGE = 50


def _day(value, *, after: bool = False) -> datetime | None:
    if value is None:
        return None
    start = datetime.combine(value, time(0), UTC)
    return start + timedelta(days=1) if after else start


@login_required
@require_GET
def anomalies_index(request):
    filters = AnomalyFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_bound and filters.is_valid() else {}
    anomalies = anomalies_filtered(
        symbol=criteria.get("symbol") or None,
        kind=criteria.get("kind") or None,
        start=_day(criteria.get("start")),
        end=_day(criteria.get("end"), after=True),
        min_score=criteria.get("min_score"),
    )
    page = Paginator(anomalies, PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboard/anomalies.html",
        {
            "page": page,
            "filters": filters if filters.is_bound else AnomalyFilterForm(),
            "query": query.urlencode(),
            "kinds": ANOMALY_KINDS,
        },
    )

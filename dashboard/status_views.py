"""The staff status page: services, feed health (scores, the last hour's
message rate and lag as sparklines), ops alerts with their history, stream
connections and workers, provider REST figures, Dramatiq queues, process CPU
and memory, and recent history loads. Live parts refresh from the
`feed.status` group (static/js/status.js)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from alerts.selectors import ops_alerts_recent
from core.health import health_report
from marketdata.selectors import load_jobs_recent
from streaming.selectors import feed_status_get_safe, ops_status_get

SPARK_WIDTH, SPARK_HEIGHT = 120, 24


def sparkline_points(values: list[float | None]) -> str:
    """SVG polyline points for `values` scaled into the sparkline box
    (missing values are skipped); empty with fewer than two."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    top = max(v for _, v in known) or 1.0
    step = SPARK_WIDTH / max(1, len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * v / top:.1f}"
        for i, v in known
    )


@login_required
@require_GET
def system_status(request):
    if not request.user.is_staff:
        raise PermissionDenied("Staff only.")
    feed = feed_status_get_safe()
    for c in feed.get("connections", []):
        history = c.get("history") or []
        c["spark_rate"] = sparkline_points([p[1] for p in history])
        c["spark_lag"] = sparkline_points([p[2] for p in history])
    # Shown in the user's display zone by the template's `show_time`.
    feed["updated_datetime"] = parse_datetime(feed.get("updated_at") or "")
    return render(
        request,
        "dashboard/status.html",
        {
            "feed": feed,
            "ops": ops_status_get(feed=feed),
            "ops_alerts": ops_alerts_recent(limit=30),
            "health": health_report(),
            "jobs": load_jobs_recent(limit=20),
            "spark": {"width": SPARK_WIDTH, "height": SPARK_HEIGHT},
            **({"live_unavailable": True} if "error" in feed else {}),
        },
    )

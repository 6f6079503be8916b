"""`/metrics`: Prometheus text exposition of the stream workers' health."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from streaming.metrics import StreamMetricsCollector
from streaming.selectors import feed_status_get_safe


@require_GET
@never_cache
def metrics(request):
    """Open like `/healthz` unless `settings.METRICS_TOKEN` is set; then a
    scraper must send `Authorization: Bearer <token>`. Answers while Redis is
    away, with `tapeline_stream_status_available 0` and no worker series."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse(
                "metrics token required\n", status=401, content_type="text/plain"
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StreamMetricsCollector(feed_status_get_safe()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

"""`/healthz`: can this process serve: its database answers (required) and its
Redis answers (without it pages show stored data, so it is "degraded", still
200: a load balancer must not take every web process out for a Redis outage)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.services_check import ServiceUnavailable, database_check, redis_check


def health_report() -> dict[str, str]:
    report = {}
    for name, check in (("database", database_check), ("redis", redis_check)):
        try:
            check()
            report[name] = "ok"
        except ServiceUnavailable as exc:
            report[name] = str(exc)
    return report


@require_GET
@never_cache
def healthz(request):
    checks = health_report()
    if checks["database"] != "ok":
        status, code = "unavailable", 503
    elif checks["redis"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JsonResponse({"status": status, "checks": checks}, status=code)

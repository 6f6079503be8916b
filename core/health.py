"""`/healthz`: is this process able to reach its database and Redis."""

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
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )

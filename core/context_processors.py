"""What the base template needs on every page, signed in or not."""

from __future__ import annotations

from django.conf import settings


def browser(request) -> dict:
    return {"browser_test_hooks": settings.BROWSER_TEST_HOOKS}

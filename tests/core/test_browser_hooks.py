"""The BROWSER_TEST_HOOKS setting reaches every page as `<body data-test-hooks>`
(static/js/hooks.js reads it; tests/e2e/test_dashboard.py checks the browser)."""

from __future__ import annotations

import pytest
from django.test import override_settings


@pytest.mark.parametrize("on", [True, False])
def test_the_body_says_whether_test_hooks_are_on(client, user_client, on):
    with override_settings(BROWSER_TEST_HOOKS=on):
        pages = [user_client.get("/"), client.get("/login/")]
    for response in pages:
        assert response.status_code == 200
        assert ('data-test-hooks="1"' in response.content.decode()) is on

from __future__ import annotations

import pytest
from django import forms
from django.test import Client

from audit.models import AuditEvent

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AuditTest/1.0"
ADMIN_BROWSER = "Mozilla/5.0 (Macintosh) StaffBrowser/2.0"


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def one(**filters) -> AuditEvent:
    found = events(**filters)
    assert len(found) == 1, [str(e) for e in found]
    return found[0]


def form_data(response) -> dict:
    """What a browser would post back from an admin add/change page as
    rendered (main form and inline formsets), to be overridden by a test."""
    data: dict = {}

    def add(form) -> None:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif value is None:
                data[bound.html_name] = ""
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(v) for v in value]
            else:
                data[bound.html_name] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context.get("inline_admin_formsets") or []:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


@pytest.fixture
def browser(user) -> Client:
    """The user's browser on the dashboard."""
    client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.7")
    client.force_login(user)
    return client


@pytest.fixture
def staff(staff_user) -> Client:
    client = Client(HTTP_USER_AGENT=ADMIN_BROWSER, REMOTE_ADDR="198.51.100.20")
    client.force_login(staff_user)
    return client

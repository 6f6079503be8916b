"""Admin: load jobs, the gap ledger, coverage view and the repair-range action."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from marketdata.calendar import expected_minutes
from marketdata.history import load_job_plan
from marketdata.models import Gap, GapState

pytestmark = pytest.mark.django_db


def test_load_jobs_and_gaps_pages_render(staff_client, instruments):
    planned = load_job_plan(
        instruments=[instruments["AAPL"]], provider="simulator", timeframe="1m",
        start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    response = staff_client.get(reverse("admin:marketdata_loadjob_changelist"))
    assert response.status_code == 200 and b"0/2" in response.content
    response = staff_client.get(
        reverse("admin:marketdata_loadjob_change", args=[planned.job.id])
    )
    assert response.status_code == 200 and b"AAPL" in response.content
    response = staff_client.get(reverse("admin:marketdata_gap_changelist"))
    assert response.status_code == 200 and b"Repair a range" in response.content


def test_coverage_view(staff_client, instruments, store_minutes):
    aapl = instruments["AAPL"]
    minutes = list(
        expected_minutes(
            "equity", datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 6, 8, tzinfo=UTC)
        )
    )
    store_minutes(aapl, minutes)
    response = staff_client.get(
        reverse("admin:marketdata_coverage"), {"symbol": "aapl"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "2024-06" in body and "1,950" in body  # 5 sessions of 390 minutes
    response = staff_client.get(
        reverse("admin:marketdata_coverage"), {"symbol": "NOPE"}
    )
    assert "No instrument" in response.content.decode()


def test_repair_range_creates_a_gap_and_validates(staff_client, instruments):
    url = reverse("admin:marketdata_gap_repair_range")
    aapl = instruments["AAPL"]
    bad = staff_client.post(
        url,
        {"instrument": aapl.pk, "start": "2024-06-03 15:00", "end": "2024-06-03 14:00"},
    )
    assert bad.status_code == 200 and "End must be after start" in bad.content.decode()
    assert not Gap.objects.exists()
    response = staff_client.post(
        url,
        {"instrument": aapl.pk, "start": "2024-06-03 14:00", "end": "2024-06-03 15:00"},
    )
    assert response.status_code == 302
    gap = Gap.objects.get()
    assert (gap.start, gap.end, gap.state, gap.source) == (
        datetime(2024, 6, 3, 14, 0, tzinfo=UTC), datetime(2024, 6, 3, 15, 0, tzinfo=UTC),
        GapState.OPEN, "admin",
    )  # fmt: skip
    assert gap.missing_minutes == 60

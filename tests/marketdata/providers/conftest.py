from __future__ import annotations

from pathlib import Path

import orjson
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture_text(vendor: str, name: str) -> str:
    return (FIXTURES / vendor / name).read_text()


def fixture_json(vendor: str, name: str):
    return orjson.loads((FIXTURES / vendor / name).read_bytes())


@pytest.fixture
def no_sleep(monkeypatch):
    """Record back-off delays instead of sleeping them (the delays are still
    asserted on: Retry-After must be honoured)."""
    slept: list[float] = []
    return slept

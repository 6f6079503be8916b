from __future__ import annotations

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Installed only so `manage.py simulate_exchange` is found: no models,
    and no production module imports this package (import-linter checks)."""

    name = "simulator"
    verbose_name = "Exchange simulator"

"""What `manage.py load_history` was asked to load: its options as a
`LoadRequest`, checked, and turned into a time range, instruments and the
provider serving each. Refusals raise `LoadHistoryError` with the sentence the
command prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.minutes import floor_minute
from marketdata.models import Instrument, Timeframe
from marketdata.providers.routing import history_provider_name
from marketdata.selectors import instruments_in_use

DEFAULT_YEARS = 5


class LoadHistoryError(Exception):
    """A request `load_history` refuses or a load that ended badly."""


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """The command's options (`None`/False/0 where not given)."""

    symbols: str | None = None
    start: str | None = None
    end: str | None = None
    year: int | None = None
    timeframe: str | None = None
    provider: str | None = None
    file: str | None = None
    symbol: str | None = None
    skip_bad: bool = False
    timezone: str | None = None
    encoding: str | None = None
    columns: str | None = None
    check_only: bool = False
    sync: bool = False
    workers: int = 0
    poll: float = 1.0
    no_wait: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LoadRequest:
        return cls(
            **{f.name: options[f.name] for f in fields(cls) if f.name in options}
        )

    @property
    def provider_name(self) -> str:
        return self.provider or settings.TAPELINE_PROVIDER

    @property
    def is_csv(self) -> bool:
        return self.provider_name == "csv" or bool(self.file)

    def bars_timeframe(self) -> str:
        """The timeframe of a provider load (1m or 1d)."""
        if self.columns:
            raise LoadHistoryError(
                "--columns maps the columns of a CSV file: use it with "
                "--provider csv --file PATH --symbol SYMBOL."
            )
        timeframe = self.timeframe or Timeframe.MINUTE
        if timeframe == Timeframe.HOUR:
            raise LoadHistoryError(
                "Hourly bars load from CSV files only (--provider csv --file F "
                "--symbol S); provider loads fetch 1m or 1d, and charts build "
                "hours from minutes."
            )
        return timeframe


def day_parse(value: str) -> datetime:
    """`YYYY-MM-DD` as UTC midnight."""
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise LoadHistoryError(f"Not a date (YYYY-MM-DD): {value!r}") from None
    return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


def load_range(request: LoadRequest) -> tuple[datetime, datetime]:
    """[start, end): `--year`, or `--start`/`--end` (default: the first of the
    month `DEFAULT_YEARS` ago until now), never past the current minute."""
    now = floor_minute(timezone.now())
    if request.year:
        if request.start or request.end:
            raise LoadHistoryError("Use --year or --start/--end, not both.")
        start = datetime(request.year, 1, 1, tzinfo=UTC)
        end = min(datetime(request.year + 1, 1, 1, tzinfo=UTC), now)
    else:
        end = day_parse(request.end) if request.end else now
        end = min(end, now)
        if request.start:
            start = day_parse(request.start)
        else:
            today = now.date()
            start = datetime(today.year - DEFAULT_YEARS, today.month, 1, tzinfo=UTC)
    if end <= start:
        raise LoadHistoryError("The range is empty: --end must be after --start.")
    return start, end


def load_instruments(request: LoadRequest) -> list[Instrument]:
    """`--symbols` in the order given, or every instrument in use."""
    if request.symbols:
        wanted = [s.strip().upper() for s in request.symbols.split(",") if s.strip()]
        found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=wanted)}
        missing = [s for s in wanted if s not in found]
        if missing:
            raise LoadHistoryError(
                f"Unknown instrument(s): {', '.join(missing)} "
                "(seed them with `manage.py seed_instruments` or add them in admin)."
            )
        return [found[s] for s in wanted]
    instruments = list(instruments_in_use().order_by("symbol"))
    if not instruments:
        raise LoadHistoryError(
            "No instrument is in any watchlist; pass --symbols AAPL,MSFT or add a "
            "watchlist."
        )
    return instruments


def provider_groups(
    request: LoadRequest, instruments: list[Instrument]
) -> dict[str, list[Instrument]]:
    """Instruments by the provider that loads them: `--provider`, or each
    instrument's history route (crypto may have its own provider)."""
    if request.provider:
        return {request.provider: instruments}
    groups: dict[str, list[Instrument]] = {}
    for instrument in instruments:
        name = history_provider_name(instrument=instrument)
        groups.setdefault(name, []).append(instrument)
    return groups

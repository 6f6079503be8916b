"""How a time is shown to a user: the zone their display preference resolves
to (for an instrument, or for the desk as a whole), the zone's short name,
and the text, e.g. "14:32:05 New York" or "2026-12-06 09:30:00 UTC".

`static/js/format.js` (`fmtTime`, `zoneLabel`) formats the same way in the
browser; server-rendered times are `<time data-tz=…>` elements that it
rewrites on load, which is how `local` (the browser's zone, unknown here)
is honoured: the server writes UTC until then.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.html import format_html

from marketdata.calendar import ALWAYS_OPEN_CLASSES
from preferences.models import EXCHANGE, LOCAL, UTC

NEW_YORK = "America/New_York"
FORMATS = {
    "time": "%H:%M:%S",
    "minute": "%H:%M",
    "datetime": "%Y-%m-%d %H:%M:%S",
    "datetime_minute": "%Y-%m-%d %H:%M",
    "date": "%Y-%m-%d",
}


def exchange_zone(instrument=None) -> str:
    """The zone an instrument's exchange keeps (crypto: UTC). Without an
    instrument (status page, ops alerts) the desk's market clock: New York,
    the zone of the US sessions the market-hours note names."""
    if instrument is not None and instrument.asset_class in ALWAYS_OPEN_CLASSES:
        return UTC
    return NEW_YORK


def zone_for(*, preference: str, instrument=None) -> str:
    """The IANA zone (or "UTC") a time is shown in on the server; `local`
    is the browser's, so the server writes UTC and the page rewrites it."""
    if preference == EXCHANGE or not preference:
        return exchange_zone(instrument)
    if preference == LOCAL:
        return UTC
    return preference


def zone_label(zone: str) -> str:
    """ "America/New_York" -> "New York"; "Etc/GMT-3" and "UTC" as written."""
    if zone in (UTC, "Etc/UTC") or zone.startswith("Etc/"):
        return zone.removeprefix("Etc/")
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def utc_offset(zone: str, at: datetime) -> str:
    """ "UTC+1", "UTC-4", "UTC+5:30", "UTC" for the zone's offset at `at`."""
    offset = at.astimezone(ZoneInfo(zone)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if not minutes:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_title(zone: str, at: datetime) -> str:
    """For headings and notes: "New York (UTC-4)", "UTC"."""
    label = zone_label(zone)
    offset = utc_offset(zone, at)
    return label if label == offset else f"{label} ({offset})"


def fmt_time(value: datetime, *, zone: str, fmt: str = "datetime") -> str:
    """`value` (aware) in `zone`, followed by the zone's name."""
    local = value.astimezone(ZoneInfo(zone))
    return f"{local.strftime(FORMATS[fmt])} {zone_label(zone)}"


def time_html(value, *, instrument=None, fmt: str = "datetime", preference=None) -> str:
    """`value` as the `<time>` element `static/js/format.js` rewrites on load
    (`{% show_time %}` in templates); "—" when it is not a datetime."""
    if not isinstance(value, datetime):
        return "—"
    if fmt not in FORMATS:
        fmt = "datetime"
    zone = zone_for(preference=preference or EXCHANGE, instrument=instrument)
    return format_html(
        '<time datetime="{}" data-tz-exchange="{}" data-fmt="{}">{}</time>',
        value.isoformat(),
        exchange_zone(instrument),
        fmt,
        fmt_time(value, zone=zone, fmt=fmt),
    )

"""JSON endpoints for charts.

GET /api/instruments/<symbol>/bars?timeframe=1h&start=…&end=…&limit=…

- `symbol`: canonical, may contain "/" and "." (`BTC/USD`, `BRK.B`); send it
  as is or URL-encoded (`BTC%2FUSD`). Case-insensitive.
- `timeframe`: 1m, 5m, 15m, 1h or 1d (default 1m). 1h and 1d are built from
  minutes; where no minutes exist they come from stored hourly/daily bars
  (CSV imports, daily loads); minutes win where both exist
  (`marketdata.rollups`).
- `start`, `end`: ISO 8601 dates or datetimes (naive means UTC) or epoch
  seconds; bars whose start lies in [start, end). Defaults: everything up to now.
- `limit`: 1…5000 (default 1000). The newest `limit` bars of the range come
  back, oldest first.

- `indicators`: optional spec, e.g. `sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9`
  (also stoch, willr, atr; see `marketdata.indicators`). Adds
  `"indicators": {"sma:20": {"sma": [...]}, "bb:20:2": {"upper": [...], ...}}`
  with one value per returned bar (null while undefined); older bars are read
  for warm-up so values start at the first bar when history allows.

Response: `{"symbol", "timeframe", "bars": [{"t", "o", "h", "l", "c", "v"}],
"next_before"}` where `t` is the bar start in epoch seconds (UTC) and prices
and volume are JSON numbers (doubles converted from the stored 8-decimal
values: exact to display precision, what lightweight-charts expects).
`next_before` is the `t` of the oldest bar returned when older bars exist:
pass it as `end` to scroll back; null otherwise. Errors: 400 with
`{"error": "..."}` for bad parameters, 401 when not logged in, 404 for an
unknown symbol.

GET /api/instruments/<symbol>/patterns?timeframe=1h&start=…&end=…&limit=…&kinds=…

Chart patterns (`marketdata.patterns`) confirmed on the bars the bars
endpoint would return for the same `timeframe`, `start`, `end` and `limit`;
`LOOKBACK_BARS` older bars are read first so a pattern that begins before the
window is still found. `kinds`: optional comma-separated kind ids (default
all). Response: `{"symbol", "timeframe", "bars", "kinds", "message",
"detections": [{"kind", "label", "direction", "t", "confidence", "explain",
"points": [{"t", "price", "role"}], "lines": [{"role", "points": [{"t",
"price"}, …]}]}]}`,
oldest confirmation first: `t` is the confirming bar's start (epoch
seconds), `lines` the segments to draw (necklines, trend lines, levels,
triangle and flag sides, the pole). `message` says why nothing was looked at
(no stored bars for the timeframe) and is null otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET

from marketdata.indicators import indicator_payload, indicators_warmup
from marketdata.patterns import LOOKBACK_BARS, PATTERN_KINDS, Detection, detect
from marketdata.rollups import TIMEFRAMES
from marketdata.selectors import bars_exist_before, bars_resampled, instrument_get

MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class BadParameter(ValueError):
    pass


def _json(payload: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(
        orjson.dumps(payload), status=status, content_type="application/json"
    )


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    value = value.strip()
    if value.lstrip("-").isdigit():
        try:
            return datetime.fromtimestamp(int(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise BadParameter(f"{name}: epoch seconds out of range") from None
    try:
        parsed = parse_datetime(value.replace("z", "Z"))
        if parsed is None:
            day = parse_date(value)
            if day is None:
                raise ValueError
            parsed = datetime(day.year, day.month, day.day)
    except ValueError:
        raise BadParameter(
            f"{name}: expected an ISO 8601 date or datetime, or epoch seconds"
        ) from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadParameter("limit: expected an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadParameter(f"limit: must be between 1 and {MAX_LIMIT}")
    return limit


@dataclass(frozen=True, slots=True)
class BarsQuery:
    timeframe: str
    start: datetime
    end: datetime
    indicators: str  # the `indicators=` spec, "" for none
    warmup: int  # older bars the indicators need before `start`


def bars_query_parse(params, *, allowed: set[str] = frozenset()) -> BarsQuery:
    """timeframe, start, end and indicators of a bars request (the chart's
    endpoint, the CSV export), or BadParameter naming what is wrong.
    `allowed`: the caller's own parameters besides these."""
    unknown = sorted(
        set(params) - {"timeframe", "start", "end", "indicators"} - set(allowed)
    )
    if unknown:
        raise BadParameter(f"unknown parameter: {', '.join(unknown)}")
    timeframe = params.get("timeframe") or "1m"
    if timeframe not in TIMEFRAMES:
        raise BadParameter(f"timeframe: expected one of {', '.join(TIMEFRAMES)}")
    start = _parse_time("start", params.get("start")) or EARLIEST
    end = _parse_time("end", params.get("end")) or timezone.now() + timedelta(minutes=1)
    if end <= start:
        raise BadParameter("end must be after start")
    spec = params.get("indicators") or ""
    try:
        warmup = indicators_warmup(spec=spec) if spec else 0
    except ValueError as exc:
        raise BadParameter(f"indicators: {exc}") from None
    return BarsQuery(timeframe, start, end, spec, warmup)


@require_GET
def instrument_bars(request: HttpRequest, symbol: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return _json({"error": "authentication required"}, status=401)
    params = request.GET
    try:
        query = bars_query_parse(params, allowed={"limit"})
        limit = _parse_limit(params.get("limit"))
    except BadParameter as exc:
        return _json({"error": str(exc)}, status=400)
    timeframe, start, end = query.timeframe, query.start, query.end
    spec, warmup = query.indicators, query.warmup

    instrument = instrument_get(symbol=symbol.strip().upper())
    if instrument is None:
        return _json({"error": f"unknown instrument {symbol!r}"}, status=404)
    rows = bars_resampled(
        instrument=instrument,
        timeframe=timeframe,
        start=start,
        end=end,
        limit=limit,
        as_float=True,
    )
    indicators = None
    if spec:
        # Older bars (also before `start`) warm the indicators up, so values
        # are defined from the first returned bar when history allows.
        older = (
            bars_resampled(
                instrument=instrument,
                timeframe=timeframe,
                start=EARLIEST,
                end=rows[0][0],
                limit=warmup,
                as_float=True,
            )
            if rows and warmup
            else []
        )
        indicators = indicator_payload(spec=spec, rows=[*older, *rows], skip=len(older))
    bars = [
        {"t": int(ts.timestamp()), "o": o, "h": h, "l": lo, "c": c, "v": v}
        for ts, o, h, lo, c, v, _n in rows
    ]
    next_before = None
    if rows and bars_exist_before(
        instrument=instrument, timeframe=timeframe, before=rows[0][0], start=start
    ):
        next_before = bars[0]["t"]
    payload = {
        "symbol": instrument.symbol,
        "timeframe": timeframe,
        "bars": bars,
        "next_before": next_before,
    }
    if indicators is not None:
        payload["indicators"] = indicators
    return _json(payload)


# Point roles drawn as line segments (one polyline per role, in time order).
LINE_ROLES = ("neckline", "level", "trendline", "upper", "lower", "pole")


def _parse_kinds(value: str | None) -> list[str] | None:
    if not value:
        return None
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(PATTERN_KINDS))
    if unknown:
        raise BadParameter(
            f"kinds: unknown {', '.join(unknown)}; known: {', '.join(PATTERN_KINDS)}"
        )
    return kinds


def detection_json(detection: Detection) -> dict:
    """A detection for the chart: epoch-second times and the lines to draw."""

    def stamp(point):
        return int(point.time.timestamp())

    lines = []
    for role in LINE_ROLES:
        segment = sorted(
            (p for p in detection.points if p.role == role), key=lambda p: p.index
        )
        if len(segment) >= 2:
            points = [{"t": stamp(p), "price": p.price} for p in segment]
            lines.append({"role": role, "points": points})
    return {
        "kind": detection.kind,
        "label": detection.label,
        "direction": detection.direction,
        "t": int(detection.confirmed_at.timestamp()),
        "confidence": detection.confidence,
        "explain": detection.explain,
        "points": [
            {"t": stamp(p), "price": p.price, "role": p.role} for p in detection.points
        ],
        "lines": lines,
    }


@dataclass(frozen=True)
class BarWindow:
    """The bars an analysis endpoint scans, and the `warmup` bars before them."""

    instrument: object
    timeframe: str
    rows: list
    older: list


def bars_window_read(
    request: HttpRequest, symbol: str, *, allowed: set[str], warmup: int
) -> BarWindow | HttpResponse:
    """Parse an analysis request the way the bars endpoint does (its window,
    `limit`, no `indicators`) and read the bars plus `warmup` older ones; or
    the error answer (401 not logged in, 400 bad parameter, 404 unknown)."""
    if not request.user.is_authenticated:
        return _json({"error": "authentication required"}, status=401)
    params = request.GET
    try:
        if "indicators" in params:
            raise BadParameter("unknown parameter: indicators")
        query = bars_query_parse(params, allowed={"limit", *allowed})
        limit = _parse_limit(params.get("limit"))
    except BadParameter as exc:
        return _json({"error": str(exc)}, status=400)
    instrument = instrument_get(symbol=symbol.strip().upper())
    if instrument is None:
        return _json({"error": f"unknown instrument {symbol!r}"}, status=404)
    read = {"instrument": instrument, "timeframe": query.timeframe, "as_float": True}
    rows = bars_resampled(start=query.start, end=query.end, limit=limit, **read)
    older = (
        bars_resampled(start=EARLIEST, end=rows[0][0], limit=warmup, **read)
        if rows
        else []
    )
    return BarWindow(instrument, query.timeframe, rows, older)


@require_GET
def instrument_patterns(request: HttpRequest, symbol: str) -> HttpResponse:
    window = bars_window_read(request, symbol, allowed={"kinds"}, warmup=LOOKBACK_BARS)
    if isinstance(window, HttpResponse):
        return window
    try:
        kinds = _parse_kinds(request.GET.get("kinds"))
    except BadParameter as exc:
        return _json({"error": str(exc)}, status=400)
    instrument, timeframe = window.instrument, window.timeframe
    rows, older = window.rows, window.older
    payload = {
        "symbol": instrument.symbol,
        "timeframe": timeframe,
        "bars": len(rows),
        "kinds": PATTERN_KINDS,
        "message": None,
        "detections": [],
    }
    if not rows:
        payload["message"] = (
            f"No {timeframe} bars stored for {instrument.symbol} in this range: "
            "no patterns to look for. Load history or pick another timeframe."
        )
        return _json(payload)
    bars = [
        {"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for ts, o, h, lo, c, v, _n in [*older, *rows]
    ]
    payload["detections"] = [
        detection_json(d)
        for d in detect(bars, kinds=kinds)
        if d.confirmed_index >= len(older)
    ]
    return _json(payload)

"""Market anomalies (`marketdata.anomalies`), newest first: the anomalies
page's data and the instrument chart's markers (`static/js/chart_anomalies.js`)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import Field as F
from ninja import Query, Router, Schema

from api.schemas import Error
from marketdata.api import BadParameter, _parse_time
from marketdata.models import AnomalyKind
from marketdata.selectors import anomalies_filtered, instrument_get

router = Router(tags=["anomalies"])


class AnomalyFilter(Schema):
    symbol: str = F(default="", description="One instrument, e.g. AAPL or BTC/USD.")
    kind: str = F(
        default="", description="return_spike, volume_surge or trade_rate_surge."
    )
    start: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    end: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    min_score: float | None = F(default=None, ge=0)
    limit: int = F(default=500, ge=1, le=5000)


class AnomalyOut(Schema):
    symbol: str
    kind: str
    ts: datetime = F(description="The minute (bar start, UTC).")
    time: int = F(description="The minute in epoch seconds (chart time).")
    score: float = F(description="Robust z-score, or multiple for surges.")
    value: float
    baseline: float
    direction: str = F(description='"up", "down" or "" (surges).')
    explain: str


@router.get(
    "/anomalies",
    response={200: list[AnomalyOut], 400: Error, 404: Error},
    url_name="anomalies",
)
def anomalies_list(request, filters: Query[AnomalyFilter]):
    """Detected anomalies, newest first, filtered by instrument, kind, time
    range [start, end) and minimum score."""
    symbol = filters.symbol.strip().upper()
    if symbol and instrument_get(symbol=symbol) is None:
        raise Http404(f"Unknown instrument {symbol!r}.")
    if filters.kind and filters.kind not in AnomalyKind.values:
        raise ValidationError(
            {"kind": [f"expected one of {', '.join(AnomalyKind.values)}"]}
        )
    try:
        start = _parse_time("start", filters.start)
        end = _parse_time("end", filters.end)
    except BadParameter as exc:
        name = str(exc).split(":", 1)[0]
        raise ValidationError({name: [str(exc).split(": ", 1)[-1]]}) from None
    rows = anomalies_filtered(
        symbol=symbol or None,
        kind=filters.kind or None,
        start=start,
        end=end,
        min_score=filters.min_score,
    )[: filters.limit]
    return [
        {
            "symbol": a.instrument.symbol,
            "kind": a.kind,
            "ts": a.ts,
            "time": int(a.ts.timestamp()),
            "score": a.score,
            "value": a.value,
            "baseline": a.baseline,
            "direction": a.direction,
            "explain": a.explain,
        }
        for a in rows
    ]

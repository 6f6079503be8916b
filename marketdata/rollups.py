"""Resampling 1-minute bars in the database, and the stored rollups that keep
long chart ranges cheap.

Resampling costs about 0.5 µs per input minute (date_bin + ordered
aggregates), so a year of hourly bars read from minutes takes ~50 ms for an
equity and ~300 ms for a 24/7 instrument. Long ranges therefore read stored
rollups: the `marketdata_bar_rollup` table (hourly and daily rows, refreshed
idempotently by `rollups_refresh` after every load and, for all instruments
of a minute at once, by the stream worker's `rollups_refresh_many`),
and on TimescaleDB additionally a continuous aggregate for hours.

Daily bars of US equities cover the regular NYSE session only (09:30–16:00
New York, 13:00 on early-close days) and are stamped at New York midnight,
as Alpaca stamps its daily bars. Crypto days are UTC days.

Stored coarse bars (provider daily bars, hourly and daily CSV imports) fill
the ranges that have no minutes, and minutes always win where both exist, so
nothing is counted twice:
- 1h: hour buckets resampled from minutes, plus every stored hourly bar whose
  own hour [ts, ts + 1 h) holds no minute. Stored hourly bars keep their own
  stamps (equity exports often start hours at :30), so next to minute data
  they can sit between the minute-built buckets.
- 1d: one source per day, in this order: minutes (the session's minutes);
  else a stored daily bar; else the day's stored hourly bars aggregated (for
  equities the hours overlapping the regular session, so a 09:00 bar that
  also holds pre-market minutes counts whole: an hour cannot be split).
- 5m and 15m come from minutes only: a coarser bar cannot be split.

Over 400 lines: both engines' reads and refreshes sit side by side, because
they must answer alike (tests/timescale compares them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial

from django.db import connection, transaction

from core.logs import RateLimitedLog
from marketdata.bar_storage import timescale_enabled
from marketdata.calendar import (
    ALWAYS_OPEN_CLASSES,
    NEW_YORK,
    nyse_is_early_close,
    nyse_is_holiday,
)

logger = logging.getLogger(__name__)
# After every live bars write: a refresh that keeps failing is one line a minute.
cagg_failures = RateLimitedLog(logger)

ROLLUP_TABLE = "marketdata_bar_rollup"
ROLLUP_LOCK = 0x726F6C6C  # advisory lock namespace ("roll")
TIMESCALE_HOURLY_VIEW = "marketdata_bar_1h"
STEPS = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
TIMEFRAMES = tuple(STEPS)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

ROLLUP_DDL = f"""
CREATE TABLE IF NOT EXISTS {ROLLUP_TABLE} (
    -- no foreign key: the instrument delete trigger (migration 0005) cleans up
    instrument_id bigint NOT NULL,
    timeframe varchar(3) NOT NULL,
    ts timestamptz NOT NULL,
    open numeric(20, 8) NOT NULL,
    high numeric(20, 8) NOT NULL,
    low numeric(20, 8) NOT NULL,
    close numeric(20, 8) NOT NULL,
    volume numeric(28, 8) NOT NULL,
    trade_count bigint,
    minutes integer NOT NULL,
    PRIMARY KEY (instrument_id, timeframe, ts)
)
"""

TIMESCALE_HOURLY_DDL = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {TIMESCALE_HOURLY_VIEW}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT instrument_id,
       time_bucket(interval '1 hour', ts) AS ts,
       first(open, ts) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, ts) AS close,
       sum(volume) AS volume,
       sum(trade_count)::bigint AS trade_count,
       count(*)::integer AS minutes
FROM marketdata_bar
WHERE timeframe = '1m'
GROUP BY instrument_id, time_bucket(interval '1 hour', ts)
WITH NO DATA
"""


def create_rollup_storage(cursor) -> None:
    """Migration helper: the rollup table always; on TimescaleDB also an
    hourly continuous aggregate with a refresh policy."""
    cursor.execute(ROLLUP_DDL)
    if timescale_enabled(cursor):
        cursor.execute(TIMESCALE_HOURLY_DDL)
        cursor.execute(
            "SELECT add_continuous_aggregate_policy(%s, "
            "start_offset => interval '3 days', end_offset => interval '1 hour', "
            "schedule_interval => interval '5 minutes', if_not_exists => true)",
            [TIMESCALE_HOURLY_VIEW],
        )


def drop_rollup_storage(cursor) -> None:
    cursor.execute(f"DROP MATERIALIZED VIEW IF EXISTS {TIMESCALE_HOURLY_VIEW}")
    cursor.execute(f"DROP TABLE IF EXISTS {ROLLUP_TABLE}")


# --- SQL building blocks -------------------------------------------------------
_AGGREGATES = """
    (array_agg(open ORDER BY ts))[1] AS open,
    max(high) AS high,
    min(low) AS low,
    (array_agg(close ORDER BY ts DESC))[1] AS close,
    sum(volume) AS volume,
    sum(trade_count)::bigint AS trade_count,
    count(*)::integer AS minutes
"""
_NY_LOCAL = "(ts AT TIME ZONE 'America/New_York')"


def session_filter(
    start: datetime, end: datetime, *, bar_length: timedelta | None = None
) -> tuple[str, list]:
    """SQL restricting minutes to regular NYSE sessions between `start` and
    `end`: weekdays that are not holidays, 09:30 to 16:00 New York (13:00 on
    early-close days). With `bar_length` (stored hourly bars), a bar counts
    when any part of it overlaps the session."""
    early, holidays = _session_exceptions(start, end)
    opens = "time '09:30'"
    params: list = []
    if bar_length is not None:
        opens = "time '09:30' - %s::interval"
        params.append(bar_length)
    sql = (
        f" AND extract(isodow FROM {_NY_LOCAL}) < 6"
        f" AND {_NY_LOCAL}::time {'>' if bar_length else '>='} {opens}"
        f" AND {_NY_LOCAL}::time < CASE WHEN {_NY_LOCAL}::date = ANY(%s::date[])"
        " THEN time '13:00' ELSE time '16:00' END"
        f" AND NOT ({_NY_LOCAL}::date = ANY(%s::date[]))"
    )
    return sql, [*params, early, holidays]


def _session_exceptions(start: datetime, end: datetime) -> tuple[list, list]:
    """(early-close days, holidays) between `start` and `end`, one day of
    margin either side."""
    first = start.astimezone(NEW_YORK).date() - timedelta(days=1)
    last = end.astimezone(NEW_YORK).date() + timedelta(days=1)
    early, holidays = _exceptions_between(first, last)
    return list(early), list(holidays)


@lru_cache(maxsize=512)
def _exceptions_between(first: date, last: date) -> tuple[tuple, tuple]:
    """Cached: the stream worker refreshes the same few days' rollups for
    every instrument each minute."""
    holidays: list[date] = []
    early: list[date] = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            if nyse_is_holiday(day):
                holidays.append(day)
            elif nyse_is_early_close(day):
                early.append(day)
        day += timedelta(days=1)
    return tuple(early), tuple(holidays)


def _session_days(timeframe: str, asset_class: str) -> bool:
    """Whether `timeframe` buckets of `asset_class` are New York session days
    (daily bars of markets that close) rather than UTC bins."""
    return timeframe == "1d" and asset_class not in ALWAYS_OPEN_CLASSES


def _bucket_sql(timeframe: str, asset_class: str) -> tuple[str, list]:
    """Bucket expression (a timestamptz) for `timeframe` over minute rows."""
    if _session_days(timeframe, asset_class):
        return f"({_NY_LOCAL}::date::timestamp AT TIME ZONE 'America/New_York')", []
    return "date_bin(%s::interval, ts, %s)", [STEPS[timeframe], EPOCH]


def resample_sql(
    *,
    timeframe: str,
    asset_class: str,
    start: datetime,
    end: datetime,
    many: bool = False,
) -> tuple[str, list]:
    """A query returning (bucket, open, high, low, close, volume, trade_count,
    minutes) for one instrument's minutes in [start, end) bucketed by
    `timeframe`; `_bind` fills in the instrument id. With `many`, the rows
    of several instruments (an id array for `_bind`) lead with instrument_id."""
    bucket, bucket_params = _bucket_sql(timeframe, asset_class)
    match, key = ("= ANY(%s::bigint[])", "instrument_id, ") if many else ("= %s", "")
    where = f"instrument_id {match} AND timeframe = '1m' AND ts >= %s AND ts < %s"
    session_sql, session_params = "", []
    if _session_days(timeframe, asset_class):
        session_sql, session_params = session_filter(start, end)
    sql = (
        f"SELECT {key}{bucket} AS bucket, {_AGGREGATES} FROM marketdata_bar "
        f"WHERE {where}{session_sql} GROUP BY {key}bucket"
    )
    return sql, [*bucket_params, "__instrument__", start, end, *session_params]


def _bind(params: list, instrument: int | list[int]) -> list:
    return [instrument if p == "__instrument__" else p for p in params]


def bucket_floor(*, timeframe: str, asset_class: str, at: datetime) -> datetime:
    """Start of the `timeframe` bucket containing `at` (UTC)."""
    if _session_days(timeframe, asset_class):
        local_day = at.astimezone(NEW_YORK).date()
        return datetime.combine(local_day, datetime.min.time(), NEW_YORK).astimezone(
            UTC
        )
    step = STEPS[timeframe]
    return EPOCH + ((at - EPOCH) // step) * step


def bucket_ceil(*, timeframe: str, asset_class: str, at: datetime) -> datetime:
    floor = bucket_floor(timeframe=timeframe, asset_class=asset_class, at=at)
    if floor == at:
        return at
    if _session_days(timeframe, asset_class):
        next_day = floor.astimezone(NEW_YORK).date() + timedelta(days=1)
        return datetime.combine(next_day, datetime.min.time(), NEW_YORK).astimezone(UTC)
    return floor + STEPS[timeframe]


# --- writes ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RollupResult:
    hours: int
    days: int


def rollups_refresh(
    *,
    instrument_id: int,
    start: datetime,
    end: datetime,
    asset_class: str | None = None,
) -> RollupResult:
    """Recompute the hourly and daily rollups of every bucket touching
    [start, end) from the stored minutes. Idempotent: buckets are replaced,
    and buckets whose minutes disappeared are removed. Call it after writing
    minutes (history loads, backfills, the stream worker's upserts)."""
    if asset_class is None:
        from marketdata.models import Instrument

        asset_class = (
            Instrument.objects.filter(id=instrument_id)
            .values_list("asset_class", flat=True)
            .first()
        ) or "equity"
    return rollups_refresh_many(
        spans={instrument_id: (start, end)},
        asset_classes={instrument_id: asset_class},
    )


def rollups_refresh_many(
    *, spans: dict[int, tuple[datetime, datetime]], asset_classes: dict[int, str]
) -> RollupResult:
    """`rollups_refresh` of several instruments (id -> [start, end) of the
    written minutes) in one transaction. Instruments whose buckets and
    refreshed bounds match share one DELETE and one INSERT per timeframe: the
    stream worker refreshes every streamed instrument each minute."""
    from django.utils import timezone

    from marketdata.retention import retention_cutoff

    cutoff = retention_cutoff(now=timezone.now())
    # (timeframe, session days, lo, hi) -> (an asset class of that kind, ids)
    groups: dict[tuple, tuple[str, list[int]]] = {}
    for instrument_id, (start, end) in spans.items():
        asset_class = asset_classes[instrument_id]
        for timeframe in ("1h", "1d"):
            lo, hi = refresh_bounds(
                timeframe=timeframe,
                asset_class=asset_class,
                start=start,
                end=end,
                cutoff=cutoff,
            )
            if lo < hi:
                key = (timeframe, _session_days(timeframe, asset_class), lo, hi)
                groups.setdefault(key, (asset_class, []))[1].append(instrument_id)
    counts = {"1h": 0, "1d": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        # Chunks of one instrument share boundary buckets (a New York day
        # straddles UTC months): refreshes of one instrument take turns.
        # The subquery sorts before the lock calls: taken in id order, so
        # batches of overlapping instruments cannot deadlock.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, id) "
            "FROM (SELECT id FROM unnest(%s::integer[]) AS id ORDER BY id) AS ids",
            [ROLLUP_LOCK, list(spans)],
        )
        if timescale_in_use(cursor):  # hour groups differ in bounds only
            for timeframe, _, lo, hi in groups:
                if timeframe == "1h":
                    transaction.on_commit(partial(_cagg_refresh, lo=lo, hi=hi))
        for (timeframe, _, lo, hi), (asset_class, ids) in groups.items():
            cursor.execute(
                f"DELETE FROM {ROLLUP_TABLE} WHERE instrument_id = ANY(%s::bigint[]) "
                "AND timeframe = %s AND ts >= %s AND ts < %s",
                [ids, timeframe, lo, hi],
            )
            sql, params = resample_sql(
                timeframe=timeframe,
                asset_class=asset_class,
                start=lo,
                end=hi,
                many=True,
            )
            cursor.execute(
                f"INSERT INTO {ROLLUP_TABLE} (instrument_id, ts, open, high, low, "
                "close, volume, trade_count, minutes, timeframe) "
                "SELECT instrument_id, bucket, open, high, low, close, volume, "
                f"trade_count, minutes, %s FROM ({sql}) AS resampled",
                [timeframe, *_bind(params, ids)],
            )
            counts[timeframe] += cursor.rowcount
    return RollupResult(hours=counts["1h"], days=counts["1d"])


def refresh_bounds(
    *,
    timeframe: str,
    asset_class: str,
    start: datetime,
    end: datetime,
    cutoff: datetime | None,
) -> tuple[datetime, datetime]:
    """The buckets a write of minutes in [start, end) recomputes: every bucket
    touching it, except, before the retention cutoff (whose minutes may be
    gone), the edge buckets the write did not cover whole, so stored rollups
    of deleted minutes are never recomputed from what is left."""
    lo = bucket_floor(timeframe=timeframe, asset_class=asset_class, at=start)
    hi = bucket_ceil(timeframe=timeframe, asset_class=asset_class, at=end)
    if cutoff is not None and lo < cutoff:
        lo = bucket_ceil(timeframe=timeframe, asset_class=asset_class, at=start)
    if cutoff is not None and end < cutoff:
        hi = bucket_floor(timeframe=timeframe, asset_class=asset_class, at=end)
    return lo, hi


def _cagg_refresh(*, lo: datetime, hi: datetime) -> None:
    """Materialize the hourly continuous aggregate over freshly written hours:
    its policy refreshes only the last days, so history loaded below its
    watermark would otherwise never show in 1h charts. Runs after commit
    (TimescaleDB refuses it inside a transaction); a failure costs a stale
    hour, never the write."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CALL refresh_continuous_aggregate(%s, %s, %s)",
                [TIMESCALE_HOURLY_VIEW, lo, hi],
            )
    except Exception as exc:  # the minutes are stored; reads fall back
        cagg_failures.warning(
            "refresh",
            "rollups: refreshing %s over [%s, %s) failed",
            TIMESCALE_HOURLY_VIEW,
            lo,
            hi,
            exc=exc,
        )


# --- reads ----------------------------------------------------------------------
def _rollup_tail_start(cursor, *, instrument_id: int, timeframe: str, before: datetime):
    """Where stored rollups stop: the last stored bucket before `before` is
    recomputed live, so bars written since the last refresh still show."""
    cursor.execute(
        f"SELECT max(ts) FROM {ROLLUP_TABLE} WHERE instrument_id = %s "
        "AND timeframe = %s AND ts < %s",
        [instrument_id, timeframe, before],
    )
    return cursor.fetchone()[0]


def bars_resampled_rows(
    *,
    instrument_id: int,
    asset_class: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    limit: int,
    numeric: str = "numeric",
) -> list[tuple]:
    """The newest `limit` bars of `timeframe` with bucket start in
    [start, end), oldest first, as tuples (ts, o, h, l, c, v, trade_count).

    1m reads the base table; 5m/15m resample minutes; 1h and 1d read stored
    rollups plus a live tail, and 1d falls back to stored provider daily bars
    for days without minutes. `numeric="float8"` returns floats (charts).
    """
    cast = "" if numeric == "numeric" else f"::{numeric}"
    columns = (
        f"ts, open{cast}, high{cast}, low{cast}, close{cast}, volume{cast}, trade_count"
    )
    if timeframe == "1m":
        # One round trip: a primary-key range scan, never JIT-compiled.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM (SELECT * FROM marketdata_bar "
                "WHERE instrument_id = %s AND timeframe = '1m' AND ts >= %s AND ts < %s "
                "ORDER BY ts DESC LIMIT %s) AS newest ORDER BY ts",
                [instrument_id, start, end, limit],
            )
            return cursor.fetchall()
    with transaction.atomic(), connection.cursor() as cursor:
        # JIT compilation costs ~15 ms on mid-size chart queries and saves nothing.
        cursor.execute("SET LOCAL jit = off")
        if timeframe in ("5m", "15m"):
            lo = _minutes_window(
                cursor,
                instrument_id=instrument_id,
                asset_class=asset_class,
                timeframe=timeframe,
                start=start,
                end=end,
                limit=limit,
            )
            sql, params = resample_sql(
                timeframe=timeframe, asset_class=asset_class, start=lo, end=end
            )
            cursor.execute(
                f"SELECT bucket AS ts, open{cast}, high{cast}, low{cast}, close{cast}, "
                f"volume{cast}, trade_count FROM ({sql}) AS resampled "
                "WHERE bucket >= %s ORDER BY bucket DESC LIMIT %s",
                [*_bind(params, instrument_id), start, limit],
            )
            return cursor.fetchall()[::-1]
        return _rollup_read(
            cursor,
            instrument_id=instrument_id,
            asset_class=asset_class,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit,
            cast=cast,
        )


def _minutes_window(
    cursor, *, instrument_id, asset_class, timeframe, start, end, limit
) -> datetime:
    """Earliest bucket start worth resampling for the newest `limit` buckets
    before `end`: a bucket holds at most `step` minutes, so the newest
    limit × step minutes span at least `limit` buckets."""
    per_bucket = int(STEPS[timeframe].total_seconds() // 60)
    cursor.execute(
        "SELECT ts FROM marketdata_bar WHERE instrument_id = %s AND timeframe = '1m' "
        "AND ts >= %s AND ts < %s ORDER BY ts DESC OFFSET %s LIMIT 1",
        [instrument_id, start, end, limit * per_bucket],
    )
    row = cursor.fetchone()
    if row is None:
        return bucket_floor(timeframe=timeframe, asset_class=asset_class, at=start)
    return bucket_floor(timeframe=timeframe, asset_class=asset_class, at=row[0])


def timescale_in_use(cursor) -> bool:
    """Whether this connection's database has the extension (cached per server
    and database: the answer changes only with a migration)."""
    info = cursor.connection.info
    key = (info.host, info.port, info.dbname)
    if key not in _TIMESCALE_CACHE:
        _TIMESCALE_CACHE[key] = timescale_enabled(cursor)
    return _TIMESCALE_CACHE[key]


_TIMESCALE_CACHE: dict[tuple, bool] = {}


_NO_MINUTES = (
    "NOT EXISTS (SELECT 1 FROM marketdata_bar m WHERE m.instrument_id = %s "
    "AND m.timeframe = '1m' AND m.ts >= {ts} AND m.ts < {ts} + interval {span})"
)


def _stored_coarse_parts(
    *,
    instrument_id: int,
    asset_class: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> tuple[list[str], list]:
    """SELECTs (ts, o, h, l, c, v, trade_count) of the stored hourly/daily
    bars that `timeframe` shows where there are no minutes (precedence in the
    module docstring), with their parameters."""
    columns = "ts, open, high, low, close, volume, trade_count"
    if timeframe == "1h":
        no_minutes = _NO_MINUTES.format(ts="h.ts", span="'1 hour'")
        return [
            f"SELECT {columns} FROM marketdata_bar h WHERE h.instrument_id = %s "
            "AND h.timeframe = '1h' AND h.ts >= %s AND h.ts < %s "
            f"AND {no_minutes} ORDER BY h.ts DESC LIMIT %s"
        ], [instrument_id, start, end, instrument_id, limit]
    if timeframe != "1d":
        return [], []
    parts = [
        # Days with no minutes at all: stored daily bars (provider or file).
        f"SELECT {columns} FROM marketdata_bar d WHERE d.instrument_id = %s "
        "AND d.timeframe = '1d' AND d.ts >= %s AND d.ts < %s "
        f"AND {_NO_MINUTES.format(ts='d.ts', span=repr('1 day'))}"
    ]
    params: list = [instrument_id, start, end, instrument_id]
    # Days with neither minutes nor a daily bar: their stored hourly bars.
    bucket, bucket_params = _bucket_sql("1d", asset_class)
    session_sql, session_params = "", []
    if asset_class not in ALWAYS_OPEN_CLASSES:
        session_sql, session_params = session_filter(start, end, bar_length=STEPS["1h"])
    parts.append(
        f"SELECT bucket AS ts, open, high, low, close, volume, trade_count FROM ("
        f"SELECT {bucket} AS bucket, {_AGGREGATES} FROM marketdata_bar "
        "WHERE instrument_id = %s AND timeframe = '1h' AND ts >= %s AND ts < %s"
        f"{session_sql} GROUP BY 1) AS days WHERE bucket >= %s "
        f"AND {_NO_MINUTES.format(ts='bucket', span=repr('1 day'))} "
        "AND NOT EXISTS (SELECT 1 FROM marketdata_bar d WHERE d.instrument_id = %s "
        "AND d.timeframe = '1d' AND d.ts >= bucket "
        "AND d.ts < bucket + interval '1 day')"
    )
    params += [
        *bucket_params,
        instrument_id,
        start,
        end,
        *session_params,
        start,
        instrument_id,
        instrument_id,
    ]
    return parts, params


def _rollup_read(
    cursor, *, instrument_id, asset_class, timeframe, start, end, limit, cast
) -> list[tuple]:
    stored_parts, stored_params = _stored_coarse_parts(
        instrument_id=instrument_id,
        asset_class=asset_class,
        timeframe=timeframe,
        start=start,
        end=end,
        limit=limit,
    )
    if timeframe == "1h" and timescale_in_use(cursor):
        # Real-time continuous aggregate: materialized hours plus fresh minutes.
        parts = [
            f"SELECT ts, open, high, low, close, volume, trade_count "
            f"FROM {TIMESCALE_HOURLY_VIEW} "
            "WHERE instrument_id = %s AND ts >= %s AND ts < %s",
            *stored_parts,
        ]
        union = " UNION ALL ".join(f"({part})" for part in parts)
        cursor.execute(
            f"SELECT ts, open{cast}, high{cast}, low{cast}, close{cast}, "
            f"volume{cast}, trade_count FROM ({union}) AS bars "
            "ORDER BY ts DESC LIMIT %s",
            [instrument_id, start, end, *stored_params, limit],
        )
        return cursor.fetchall()[::-1]
    tail = _rollup_tail_start(
        cursor, instrument_id=instrument_id, timeframe=timeframe, before=end
    )
    # Buckets at or after `tail` (or all of them when nothing is stored) come
    # from the minutes, so the rollup never lags the base table.
    live_from = max(start, tail) if tail is not None else start
    live_from = bucket_floor(timeframe=timeframe, asset_class=asset_class, at=live_from)
    if tail is None:
        # Nothing stored for this instrument yet: resample minutes, bounded.
        live_from = max(
            live_from,
            _minutes_window(
                cursor,
                instrument_id=instrument_id,
                asset_class=asset_class,
                timeframe=timeframe,
                start=start,
                end=end,
                limit=limit,
            ),
        )
    live_sql, live_params = resample_sql(
        timeframe=timeframe, asset_class=asset_class, start=live_from, end=end
    )
    parts = [
        f"SELECT ts, open, high, low, close, volume, trade_count FROM {ROLLUP_TABLE} "
        "WHERE instrument_id = %s AND timeframe = %s AND ts >= %s AND ts < %s",
        "SELECT bucket AS ts, open, high, low, close, volume, trade_count "
        f"FROM ({live_sql}) AS live WHERE bucket >= %s",
    ]
    params: list = [instrument_id, timeframe, start, live_from]
    params += [*_bind(live_params, instrument_id), max(start, live_from)]
    parts += stored_parts
    params += stored_params
    union = " UNION ALL ".join(f"({part})" for part in parts)
    cursor.execute(
        f"SELECT ts, open{cast}, high{cast}, low{cast}, close{cast}, volume{cast}, "
        f"trade_count FROM ({union}) AS bars ORDER BY ts DESC LIMIT %s",
        [*params, limit],
    )
    return cursor.fetchall()[::-1]

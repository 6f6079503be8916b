"""Session sparklines kept in Redis, so a page render does no bar scan.

One hash per instrument under `core.redis.key("spark", <instrument id>)`:

    _start   epoch seconds of the session the points belong to
    _bucket  minutes per point (`marketdata.selectors.sparkline_bucket`)
    _seeded  present once the hash was built from the stored bars
    <index>  "<minute start epoch> <close>" for bucket <index> of the session:
             the last stored minute of that bucket

Who writes it:

- the stream worker, as minutes are stored (`sparklines_minutes_stored`, called
  by `streaming.services.live_bars_store` after the bars are committed);
- a page that finds no seeded hash for the current session (first start, a
  Redis flush or restart, a new session, expiry): it computes the line from
  the stored bars (`marketdata.selectors.session_bucket_closes`) and seeds it;
- any other bar write (history loads, backfills, imports) forgets the hashes of
  its instruments after its commit (`sparklines_forget`), so the next page
  rebuilds them from the database.

Both writes merge per bucket keeping the later minute, in one Lua script, so
the worker and a page seeding at the same time cannot lose each other's
minute. A seeded hash also expires after `SEEDED_TTL`: a forget that could not
reach Redis costs at most that long of a stale line, never more.
"""

from __future__ import annotations

import logging

from core.redis import REDIS_ERRORS, key, redis_client, redis_outage
from marketdata.selectors import session_bucket_closes, session_latest, sparkline_bucket

logger = logging.getLogger(__name__)

SEEDED_TTL = 15 * 60
UNSEEDED_TTL = 2 * 24 * 3600

# KEYS: the hash, the line. ARGV: mode ("seed" | "add"), session start,
# bucket, ttl, then triples of (bucket index, minute epoch, close). "add" keeps
# an equal minute's newer version (a stored correction); "seed" never
# overwrites what is there. A seeded hash also gets its line rewritten:
# "<start> <bucket> <last index> <close> <close> ..." in bucket order, what a
# page reads (one short string per instrument, no hash to parse).
_MERGE = """
local k, line = KEYS[1], KEYS[2]
local mode, start = ARGV[1], ARGV[2]
if redis.call('HGET', k, '_start') ~= start then
  redis.call('DEL', k, line)
  redis.call('HSET', k, '_start', start)
end
for i = 5, #ARGV, 3 do
  local old = redis.call('HGET', k, ARGV[i])
  local new_ts = tonumber(ARGV[i + 1])
  local old_ts = old and tonumber(string.match(old, '^%S+'))
  if not old_ts or old_ts < new_ts or (mode == 'add' and old_ts == new_ts) then
    redis.call('HSET', k, ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  end
end
if mode == 'seed' then
  redis.call('HSET', k, '_seeded', '1', '_bucket', ARGV[3])
  redis.call('EXPIRE', k, tonumber(ARGV[4]))
elseif redis.call('TTL', k) == -1 then
  redis.call('EXPIRE', k, tonumber(ARGV[4]))
end
if redis.call('HEXISTS', k, '_seeded') == 1 then
  local h = redis.call('HGETALL', k)
  local points = {}
  for j = 1, #h, 2 do
    if string.sub(h[j], 1, 1) ~= '_' then
      points[#points + 1] = {tonumber(h[j]), string.match(h[j + 1], '%S+$')}
    end
  end
  table.sort(points, function(a, b) return a[1] < b[1] end)
  local last = points[#points] and points[#points][1] or -1
  local parts = {start, redis.call('HGET', k, '_bucket'), string.format('%d', last)}
  for _, p in ipairs(points) do parts[#parts + 1] = p[2] end
  redis.call('SET', line, table.concat(parts, ' '))
  redis.call('EXPIRE', line, redis.call('TTL', k))
end
return 1
"""


def sparkline_key(instrument_id: int) -> str:
    return key("spark", str(instrument_id))


def _line_key(instrument_id: int) -> str:
    return key("sparkline", str(instrument_id))


def _merge(pipe, *, instrument_id: int, mode: str, start: float, bucket: int, ttl: int,
           points) -> None:  # fmt: skip
    args = [mode, str(int(start)), str(bucket), str(ttl)]
    for index, minute, close in points:
        args += [str(index), str(int(minute)), repr(float(close))]
    keys = (sparkline_key(instrument_id), _line_key(instrument_id))
    pipe.eval(_MERGE, 2, *keys, *args)


def _line(raw: bytes | None, start: int) -> dict | None:
    """The page's sparkline document from a stored line, or None when there
    is none for the session starting at `start`."""
    if raw is None:
        return None
    stored_start, bucket, last, *closes = raw.split()
    if int(stored_start) != start:
        return None
    index = int(last)
    return {
        "bucket": int(bucket),
        "start": float(start),
        "points": [float(close) for close in closes],
        "last": float(start + index * int(bucket) * 60) if index >= 0 else None,
    }


def sparklines_get(*, instruments) -> dict[str, dict]:
    """Each instrument's session sparkline (shape of
    `marketdata.selectors.session_sparklines`): from Redis, else computed from
    the stored bars and seeded. Redis away: from the database only."""
    instruments = list(instruments)
    if not instruments:
        return {}
    starts: dict[str, int | None] = {}
    for instrument in instruments:
        if instrument.asset_class not in starts:
            session = session_latest(asset_class=instrument.asset_class)
            starts[instrument.asset_class] = (
                int(session.open.timestamp()) if session is not None else None
            )
    result: dict[str, dict] = {}
    outage = redis_outage()
    reachable = outage.should_try()
    wanted = [i for i in instruments if starts[i.asset_class] is not None]
    if reachable and wanted:
        try:
            answers = redis_client().mget([_line_key(i.pk) for i in wanted])
            for instrument, raw in zip(wanted, answers, strict=True):
                line = _line(raw, starts[instrument.asset_class])
                if line is not None:
                    result[instrument.symbol] = line
            outage.succeeded()
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing="reading sparklines")
            reachable = False
    missing = [i for i in instruments if i.symbol not in result]
    if not missing:
        return result
    # First start, a flushed or restarted Redis, a new session or an expired
    # line: the stored bars are the truth; seed Redis for the next page.
    closes = session_bucket_closes(instruments=missing)
    for instrument in missing:
        session, bucket, rows = closes[instrument.pk]
        start = session.open.timestamp() if session is not None else 0
        result[instrument.symbol] = {
            "bucket": bucket,
            "start": start,
            "points": [close for _, _, close in rows],
            "last": rows[-1][0] if rows else None,
        }
    if reachable:
        _seed(closes)
    return result


def _seed(closes: dict[int, tuple]) -> None:
    outage = redis_outage()
    try:
        pipe = redis_client().pipeline(transaction=False)
        for instrument_id, (session, bucket, rows) in closes.items():
            if session is None:
                continue
            start = session.open.timestamp()
            points = [
                (round((b - start) / (bucket * 60)), minute, close)
                for b, minute, close in rows
            ]
            _merge(pipe, instrument_id=instrument_id, mode="seed", start=start,
                   bucket=bucket, ttl=SEEDED_TTL, points=points)  # fmt: skip
        pipe.execute()
        outage.succeeded()
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing="storing sparklines")


def sparklines_minutes_stored(*, bars, asset_classes: dict[int, str]) -> None:
    """Merge stored minutes `(instrument id, minute start, close)` into the
    Redis lines of their sessions (the stream worker's hook; the bars are
    committed). Minutes outside their market's current session are skipped.
    Redis errors are logged through the outage tracker, never raised."""
    sessions: dict[str, object] = {}
    merged: dict[int, tuple] = {}
    for instrument_id, ts, close in bars:
        asset_class = asset_classes.get(instrument_id, "equity")
        if asset_class not in sessions:
            sessions[asset_class] = session_latest(asset_class=asset_class)
        session = sessions[asset_class]
        # Only the session a page shows now: a late minute of an earlier one
        # must not reset the current line.
        if session is None or not session.open <= ts < session.close:
            continue
        bucket = sparkline_bucket(session)
        index = int((ts - session.open).total_seconds() // (bucket * 60))
        entry = merged.setdefault(instrument_id, (session, bucket, []))
        entry[2].append((index, ts.timestamp(), close))
    if not merged:
        return
    outage = redis_outage()
    if not outage.should_try():
        return  # the flushed or restarted Redis is reseeded from the bars
    try:
        pipe = redis_client().pipeline(transaction=False)
        for instrument_id, (session, bucket, points) in merged.items():
            _merge(pipe, instrument_id=instrument_id, mode="add",
                   start=session.open.timestamp(), bucket=bucket,
                   ttl=UNSEEDED_TTL, points=points)  # fmt: skip
        pipe.execute()
        outage.succeeded()
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing="storing sparklines")


def sparklines_forget(*, instrument_ids) -> None:
    """Drop the Redis lines of `instrument_ids` (bars written by something
    other than the stream worker): the next page rebuilds them."""
    ids = list(instrument_ids)
    if not ids:
        return
    try:
        redis_client().delete(
            *(sparkline_key(i) for i in ids), *(_line_key(i) for i in ids)
        )
    except REDIS_ERRORS as exc:  # bounded by SEEDED_TTL
        redis_outage().failed(exc, doing="forgetting sparklines")

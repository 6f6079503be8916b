"""Health score of one provider connection: 0-100, healthy or not, and why.

Used by the feed monitor (`streaming.monitor`), the status page, `/metrics`
and failover. The score is a weighted mean of five parts, each 0..1
(weights in `HealthWeights`, limits in `HealthLimits`, both from settings):

- uptime (30): share of the last `window` seconds (10 min) the connection
  was live;
- reconnects (20): 1 with none in the last hour, 0 at `reconnects_bad` (10);
- errors (15): provider errors plus malformed frames per message received
  over the window; 1 at none, 0 at `error_rate_bad` (5 %);
- lag (15): p99 of receive time minus event time over the last minute; 1 up
  to `lag_good_ms` (1 s), 0 from `lag_bad_ms` (10 s); 1 without samples;
- rate (20): while a market the connection serves is open and it has
  subscriptions, messages/s over the last minute against its baseline (a
  slow moving average of its per-minute rate while open, live and
  subscribed): 1 at half the baseline or more, linear to 0 at none. With no
  baseline yet, 1 while messages arrive. 1 while the market is closed.

`healthy` is `value >= threshold` (60) and no hard failure holds: not live
for more than `down_grace` seconds (5 s; a connection never started counts
as neither up nor down), a ping unanswered past the connection's timeout,
or silent while open and
subscribed for longer than its baseline explains (the time in which it
normally delivers `silent_messages` (5) messages, at least `silent_min`
(5 s) and at most `silent_after` (60 s), which is also the limit without a
baseline).

`HealthTracker.observe(connection, now)` (once a second, by the monitor)
keeps the history the parts need; `HealthTracker.score(connection, now)`
returns a `HealthScore`. `health_score(inputs)` is the formula alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from streaming.stats import percentile

MARKET_KINDS = ("trade", "quote", "bar", "status")
# Never started, or shut down: neither up nor down.
UNJUDGED = frozenset({"idle", "stopped"})


@dataclass(frozen=True)
class HealthWeights:
    uptime: float = 30.0
    reconnects: float = 20.0
    errors: float = 15.0
    lag: float = 15.0
    rate: float = 20.0


@dataclass(frozen=True)
class HealthLimits:
    threshold: float = 60.0
    window: float = 600.0
    reconnects_bad: float = 10.0
    error_rate_bad: float = 0.05
    lag_good_ms: float = 1000.0
    lag_bad_ms: float = 10000.0
    rate_ratio_good: float = 0.5
    down_grace: float = 5.0
    silent_after: float = 60.0
    silent_min: float = 5.0
    silent_messages: float = 5.0
    baseline_minutes: float = 30.0  # the moving average's time constant

    @classmethod
    def from_settings(cls) -> HealthLimits:
        from django.conf import settings

        return cls(
            threshold=float(settings.STREAM_HEALTH_THRESHOLD),
            window=float(settings.STREAM_HEALTH_WINDOW),
            down_grace=float(settings.STREAM_HEALTH_DOWN_GRACE),
            silent_after=float(settings.STREAM_HEALTH_SILENT_AFTER),
        )


@dataclass(frozen=True)
class HealthInputs:
    live: bool
    down_s: float = 0.0  # seconds since it stopped being live (0 while live)
    state: str = "live"
    uptime: float = 1.0  # share of the window live
    reconnects_per_hour: float = 0.0
    error_rate: float = 0.0  # errors + malformed per message
    lag_p99_ms: float | None = None
    market_open: bool = False
    subscribed: int = 0
    rate: float | None = None  # messages/s over the last minute
    baseline: float | None = None  # usual messages/s while open
    silent_s: float = 0.0  # seconds without market data while open
    ping_unanswered_s: float | None = None  # a ping unanswered past its timeout


@dataclass(frozen=True)
class HealthScore:
    value: int
    healthy: bool
    reasons: list[str] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _linear(value: float, good: float, bad: float) -> float:
    """1 at `good` or better, 0 at `bad` or worse."""
    if value <= good:
        return 1.0
    if value >= bad:
        return 0.0
    return (bad - value) / (bad - good)


def silence_limit(baseline: float | None, limits: HealthLimits) -> float:
    """Seconds without data, while open and subscribed, that are not normal."""
    if not baseline:
        return limits.silent_after
    usual = limits.silent_messages / baseline
    return min(limits.silent_after, max(limits.silent_min, usual))


def health_score(
    inputs: HealthInputs,
    *,
    weights: HealthWeights | None = None,
    limits: HealthLimits | None = None,
) -> HealthScore:
    """The formula of the module docstring."""
    w, lim, i = weights or HealthWeights(), limits or HealthLimits(), inputs
    reasons: list[str] = []
    expected = i.market_open and i.subscribed > 0
    parts = {
        "uptime": max(0.0, min(1.0, i.uptime)),
        "reconnects": _linear(i.reconnects_per_hour, 0.0, lim.reconnects_bad),
        "errors": _linear(i.error_rate, 0.0, lim.error_rate_bad),
        "lag": 1.0
        if i.lag_p99_ms is None
        else _linear(i.lag_p99_ms, lim.lag_good_ms, lim.lag_bad_ms),
        "rate": 1.0,
    }
    if expected:
        if i.baseline:
            ratio = (i.rate or 0.0) / i.baseline
            parts["rate"] = min(1.0, ratio / lim.rate_ratio_good)
        elif not i.rate and i.silent_s >= lim.silent_after:
            parts["rate"] = 0.0
    total = sum(asdict(w).values()) or 1.0
    value = round(100 * sum(getattr(w, k) * v for k, v in parts.items()) / total)
    if parts["uptime"] < 1:
        reasons.append(
            f"live {parts['uptime']:.0%} of the last {lim.window / 60:.0f} min"
        )
    if i.reconnects_per_hour:
        reasons.append(f"{i.reconnects_per_hour:.0f} reconnects in the last hour")
    if i.error_rate:
        reasons.append(f"errors in {i.error_rate:.1%} of messages")
    if parts["lag"] < 1:
        reasons.append(f"lag p99 {i.lag_p99_ms / 1000:.1f} s")
    if parts["rate"] < 1:
        usual = f" (usually {i.baseline:.1f})" if i.baseline else ""
        reasons.append(f"{i.rate or 0:.1f} messages/s while open{usual}")
    healthy = value >= lim.threshold
    if value < lim.threshold:
        reasons.insert(0, f"score {value} below {lim.threshold:.0f}")
    if not i.live and i.down_s > lim.down_grace:
        healthy = False
        reasons.insert(0, f"{i.state} for {i.down_s:.0f} s")
    if i.ping_unanswered_s is not None:
        healthy = False
        reasons.insert(0, f"no answer to a ping for {i.ping_unanswered_s:.0f} s")
    limit = silence_limit(i.baseline, lim)
    if i.live and expected and i.silent_s > limit:
        healthy = False
        reasons.insert(0, f"no market data for {i.silent_s:.0f} s while open")
    return HealthScore(
        value=value,
        healthy=healthy,
        reasons=reasons,
        parts={k: round(v, 3) for k, v in parts.items()},
    )


def messages_of(stats) -> int:
    return sum(stats.by_kind.get(kind, 0) for kind in MARKET_KINDS)


def calendar_open(asset_class: str, now: float) -> bool:
    from marketdata import calendar

    return calendar.is_open(asset_class, datetime.fromtimestamp(now, UTC))


class _History:
    """What one connection's score needs over time (see `HealthTracker`)."""

    def __init__(self, now: float, stats) -> None:
        self.live: deque[tuple[float, bool]] = deque()  # (t, live) at observe
        self.counts: deque[tuple[float, int, int]] = deque()  # (t, msgs, errors)
        self.lags: deque[tuple[float, float]] = deque()  # (t, p99 ms)
        self.reconnect_times: deque[float] = deque()
        self.reconnects_seen = stats.reconnects
        self.down_since: float | None = None
        self.data_at = now  # newest data, or when data became expected
        self.messages_seen = messages_of(stats)
        self.expected = False
        self.baseline: float | None = None
        self.baseline_at = now
        self.baseline_count = self.messages_seen


class HealthTracker:
    """Per-connection history and scores. Call `observe` about once a
    second; `score` any time (an unknown connection is observed first)."""

    def __init__(
        self,
        *,
        weights: HealthWeights | None = None,
        limits: HealthLimits | None = None,
        market_open: Callable[[str, float], bool] = calendar_open,
    ) -> None:
        self.weights = weights or HealthWeights()
        self.limits = limits or HealthLimits()
        self.market_open = market_open
        self.history: dict[str, _History] = {}

    def is_expected(self, connection, now: float) -> bool:
        """A market it serves is open and it has instruments to stream."""
        return bool(connection.desired) and self.market_open(
            connection.asset_class, now
        )

    def observe(self, connection, now: float) -> None:
        stats, lim = connection.stats, self.limits
        h = self.history.get(connection.key)
        if h is None:
            h = self.history[connection.key] = _History(now, stats)
        live = connection.state == "live"
        if connection.state in UNJUDGED:
            h.down_since = None
        else:
            h.live.append((now, live))
            if live:
                h.down_since = None
            elif h.down_since is None:
                h.down_since = now
        new_reconnects = stats.reconnects - h.reconnects_seen
        h.reconnects_seen = stats.reconnects
        h.reconnect_times.extend([now] * max(0, new_reconnects))
        messages = messages_of(stats)
        h.counts.append((now, messages, stats.errors + stats.malformed))
        lags = list(stats.lags)
        if lags:
            h.lags.append((now, 1000 * percentile(sorted(lags), 0.99)))
        expected = self.is_expected(connection, now)
        if messages != h.messages_seen or (expected and not h.expected):
            h.data_at = now  # data arrived, or from now on it is expected
        h.messages_seen, h.expected = messages, expected
        # The baseline learns only from minutes that should carry data.
        if not (expected and live):
            h.baseline_at, h.baseline_count = now, messages
        elif now - h.baseline_at >= 60:
            rate = (messages - h.baseline_count) / (now - h.baseline_at)
            alpha = 1 / max(1.0, lim.baseline_minutes)
            h.baseline = (
                rate if h.baseline is None else h.baseline + alpha * (rate - h.baseline)
            )
            h.baseline_at, h.baseline_count = now, messages
        for queue, keep in (
            (h.live, lim.window),
            (h.counts, lim.window),
            (h.lags, 60.0),
        ):
            while len(queue) > 1 and queue[0][0] < now - keep:
                queue.popleft()
        while h.reconnect_times and h.reconnect_times[0] < now - 3600:
            h.reconnect_times.popleft()

    def inputs(self, connection, now: float) -> HealthInputs:
        h = self.history.get(connection.key)
        if h is None:
            self.observe(connection, now)
            h = self.history[connection.key]
        unanswered = getattr(connection, "unanswered_ping_for", None)
        return HealthInputs(
            live=connection.state in ("live", *UNJUDGED),
            ping_unanswered_s=None if unanswered is None else unanswered(now),
            down_s=0.0 if h.down_since is None else now - h.down_since,
            state=connection.state,
            uptime=_uptime(h.live, now, self.limits.window),
            reconnects_per_hour=float(len(h.reconnect_times)),
            error_rate=_error_rate(h.counts),
            lag_p99_ms=(sum(v for _, v in h.lags) / len(h.lags)) if h.lags else None,
            market_open=self.market_open(connection.asset_class, now),
            subscribed=len(connection.desired),
            rate=self.rate(connection.key, now),
            baseline=h.baseline,
            silent_s=(now - h.data_at) if h.expected else 0.0,
        )

    def score(self, connection, now: float) -> HealthScore:
        return health_score(
            self.inputs(connection, now), weights=self.weights, limits=self.limits
        )

    def rate(self, key: str, now: float, span: float = 60.0) -> float | None:
        """Messages/s over the last `span` seconds observed."""
        h = self.history.get(key)
        if h is None or len(h.counts) < 2:
            return None
        newest = h.counts[-1]
        oldest = next((c for c in h.counts if c[0] >= now - span), h.counts[0])
        if newest[0] - oldest[0] <= 0:
            oldest = h.counts[0]
        elapsed = newest[0] - oldest[0]
        return None if elapsed <= 0 else (newest[1] - oldest[1]) / elapsed

    def reconnects_last_hour(self, key: str) -> int:
        h = self.history.get(key)
        return 0 if h is None else len(h.reconnect_times)


def _uptime(samples: deque[tuple[float, bool]], now: float, window: float) -> float:
    """Time-weighted share live: each sample holds until the next one."""
    if not samples:
        return 1.0
    start = max(samples[0][0], now - window)
    if now - start <= 0:
        return 1.0 if samples[-1][1] else 0.0
    live = 0.0
    points = list(samples)
    for (t, is_live), (t_next, _) in zip(
        points, [*points[1:], (now, False)], strict=True
    ):
        lo, hi = max(t, start), max(min(t_next, now), start)
        if is_live and hi > lo:
            live += hi - lo
    return live / (now - start)


def _error_rate(counts: deque[tuple[float, int, int]]) -> float:
    if len(counts) < 2:
        return 0.0
    messages = counts[-1][1] - counts[0][1]
    errors = counts[-1][2] - counts[0][2]
    if errors <= 0:
        return 0.0
    return errors / max(1, messages)

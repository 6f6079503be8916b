"""Incremental indicators, one bar at a time.

The classes (`SMA`, `EMA`, `RSI`, `MACD`, `Bollinger`, `Stochastic`,
`WilliamsR`, `ATR`) keep a few numbers of state, take one bar per `update()`
and return what the vectorized function returns at that index (NaN while
warming up). The alert engine and the live chart use them.
"""

from __future__ import annotations

import math
from collections import deque

from marketdata.indicators.vectorized import NAN, check_period


class SMA:
    """Simple moving average, one value at a time."""

    __slots__ = ("period", "_window", "_sum", "_updates")

    def __init__(self, period: int) -> None:
        self.period = check_period(period, minimum=1)
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._updates = 0

    def update(self, value: float) -> float:
        window = self._window
        window.append(value)
        self._sum += value
        if len(window) > self.period:
            self._sum -= window.popleft()
        self._updates += 1
        if self._updates % 1024 == 0:
            # A running sum drifts; re-add the window now and then.
            self._sum = math.fsum(window)
        if len(window) < self.period:
            return NAN
        return self._sum / self.period

    @property
    def ready(self) -> bool:
        return len(self._window) >= self.period


class _Seeded:
    """A running average seeded with the SMA of the first `period` values, as
    TA-Lib seeds EMA and Wilder's smoothing; `_step` is the smoothing after."""

    __slots__ = ("period", "value", "_seed")

    def __init__(self, period: int) -> None:
        self.period = period
        self.value = NAN
        self._seed: list[float] | None = []

    def update(self, x: float) -> float:
        if self._seed is not None:
            self._seed.append(x)
            if len(self._seed) < self.period:
                return NAN
            self.value = sum(self._seed) / self.period
            self._seed = None
            return self.value
        self.value = self._step(x)
        return self.value

    def _step(self, x: float) -> float:
        raise NotImplementedError


class EMA(_Seeded):
    """EMA seeded with the SMA of the first `period` values, as TA-Lib does."""

    __slots__ = ("k",)

    def __init__(self, period: int) -> None:
        super().__init__(check_period(period, minimum=1))
        self.k = 2.0 / (self.period + 1)

    def _step(self, x: float) -> float:
        return (1.0 - self.k) * self.value + self.k * x


class _Wilder(_Seeded):
    __slots__ = ()

    def _step(self, x: float) -> float:
        n = self.period
        return (n - 1) / n * self.value + x / n


class RSI:
    """Wilder RSI; the first value comes with the (period+1)-th close."""

    __slots__ = ("period", "_previous", "_gain", "_loss", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self._previous: float | None = None
        self._gain = _Wilder(self.period)
        self._loss = _Wilder(self.period)
        self.value = NAN

    def update(self, close: float) -> float:
        previous = self._previous
        self._previous = close
        if previous is None:
            return NAN
        change = close - previous
        gain = self._gain.update(change if change > 0 else 0.0)
        loss = self._loss.update(-change if change < 0 else 0.0)
        if gain != gain:
            return NAN
        total = gain + loss
        self.value = 100.0 * gain / total if total != 0.0 else 0.0
        return self.value


class MACD:
    """MACD line, signal and histogram; NaN until slow-1 + signal-1 closes."""

    __slots__ = ("fast", "slow", "signal", "_buffer", "_fast", "_slow", "_signal", "_k")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        fast = check_period(fast, "fast period")
        slow = check_period(slow, "slow period")
        if slow < fast:
            fast, slow = slow, fast
        self.fast, self.slow = fast, slow
        self.signal = check_period(signal, "signal period", minimum=1)
        self._buffer: list[float] | None = []
        self._fast = self._slow = NAN
        self._signal = EMA(self.signal)

    def update(self, close: float) -> tuple[float, float, float]:
        if self._buffer is not None:
            self._buffer.append(close)
            if len(self._buffer) < self.slow:
                return NAN, NAN, NAN
            self._fast = sum(self._buffer[-self.fast :]) / self.fast
            self._slow = sum(self._buffer) / self.slow
            self._buffer = None
        else:
            kf = 2.0 / (self.fast + 1)
            ks = 2.0 / (self.slow + 1)
            self._fast = (1.0 - kf) * self._fast + kf * close
            self._slow = (1.0 - ks) * self._slow + ks * close
        line = self._fast - self._slow
        signal = self._signal.update(line)
        if signal != signal:
            return NAN, NAN, NAN
        return line, signal, line - signal


class Bollinger:
    """Upper, middle, lower band (population standard deviation)."""

    __slots__ = ("period", "k", "_window")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = check_period(period)
        self.k = float(k)
        self._window: deque[float] = deque(maxlen=self.period)

    def update(self, close: float) -> tuple[float, float, float]:
        window = self._window
        window.append(close)
        if len(window) < self.period:
            return NAN, NAN, NAN
        anchor = window[-1]
        total = 0.0
        squares = 0.0
        for value in window:
            deviation = value - anchor
            total += deviation
            squares += deviation * deviation
        mean_dev = total / self.period
        variance = max(squares / self.period - mean_dev * mean_dev, 0.0)
        middle = anchor + mean_dev
        width = self.k * math.sqrt(variance)
        return middle + width, middle, middle - width


class _Extremes:
    __slots__ = ("period", "_highs", "_lows")

    def __init__(self, period: int) -> None:
        self.period = period
        self._highs: deque[float] = deque(maxlen=period)
        self._lows: deque[float] = deque(maxlen=period)

    def update(self, high: float, low: float) -> tuple[float, float] | None:
        self._highs.append(high)
        self._lows.append(low)
        if len(self._highs) < self.period:
            return None
        return max(self._highs), min(self._lows)


class Stochastic:
    """Slow stochastic %K and %D with SMA smoothing (TA-Lib STOCH defaults)."""

    __slots__ = ("_extremes", "_smooth", "_signal", "_count", "_first")

    def __init__(self, k: int = 14, d: int = 3, smooth: int = 3) -> None:
        k = check_period(k, "k period", minimum=1)
        d = check_period(d, "d period", minimum=1)
        smooth = check_period(smooth, "smoothing period", minimum=1)
        self._extremes = _Extremes(k)
        self._smooth = SMA(smooth)
        self._signal = SMA(d)
        self._count = 0
        self._first = k - 1 + smooth - 1 + d - 1

    def update(self, high: float, low: float, close: float) -> tuple[float, float]:
        self._count += 1
        extremes = self._extremes.update(high, low)
        if extremes is None:
            return NAN, NAN
        highest, lowest = extremes
        span = highest - lowest
        fast_k = (close - lowest) / (span / 100.0) if span != 0.0 else 0.0
        slow_k = self._smooth.update(fast_k)
        if slow_k != slow_k:
            return NAN, NAN
        slow_d = self._signal.update(slow_k)
        if self._count <= self._first:
            return NAN, NAN
        return slow_k, slow_d


class WilliamsR:
    __slots__ = ("_extremes",)

    def __init__(self, period: int = 14) -> None:
        self._extremes = _Extremes(check_period(period))

    def update(self, high: float, low: float, close: float) -> float:
        extremes = self._extremes.update(high, low)
        if extremes is None:
            return NAN
        highest, lowest = extremes
        span = (highest - lowest) / -100.0
        return (highest - close) / span if span != 0.0 else 0.0


class ATR:
    """Wilder average true range; the first value comes with bar index `period`."""

    __slots__ = ("period", "_previous_close", "_smooth", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period, minimum=1)
        self._previous_close: float | None = None
        self._smooth = _Wilder(self.period)
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        previous = self._previous_close
        self._previous_close = close
        if previous is None:
            return NAN
        tr = max(high, previous) - min(low, previous)
        self.value = self._smooth.update(tr)
        return self.value

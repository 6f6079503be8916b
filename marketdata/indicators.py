"""Technical indicators: vectorized over arrays, and incremental one bar at a time.

Vectorized functions take 1-D float arrays and return arrays of the same length
whose warm-up positions are NaN exactly where TA-Lib's defaults put them
(classic compatibility, unstable period 0):

| function | first value at index | TA-Lib |
| --- | --- | --- |
| `sma(x, n)` | n-1 | SMA |
| `ema(x, n)` | n-1, seeded with the SMA of the first n values | EMA |
| `rsi(c, n=14)` | n (Wilder smoothing) | RSI |
| `macd(c, 12, 26, 9)` -> (macd, signal, hist) | slow-1 + signal-1; both EMAs seeded at slow-1 | MACD |
| `bollinger(c, 20, 2)` -> (upper, middle, lower) | n-1 (population deviation) | BBANDS |
| `stochastic(h, l, c, 14, 3, 3)` -> (%K, %D) | k-1 + 2*(d-1) for the SMA-smoothed slow %K/%D | STOCH |
| `williams_r(h, l, c, 14)` | n-1 | WILLR |
| `atr(h, l, c, 14)` | n, seeded with the mean true range of bars 1..n (Wilder) | ATR |

Exponential and Wilder smoothing are first-order recurrences evaluated in C by
`scipy.signal.lfilter`; rolling sums use per-chunk anchors so long series keep
full precision (a global cumulative sum loses digits on 500,000 bars); rolling
extremes use `scipy.ndimage` min/max filters.

Incremental classes (`SMA`, `EMA`, `RSI`, `MACD`, `Bollinger`, `Stochastic`,
`WilliamsR`, `ATR`) keep a few numbers of state, take one bar per `update()`
and return what the vectorized function returns at that index (NaN while
warming up). The alert engine and the live chart use them.

`indicator_series(spec=..., opens=..., ...)` serves the chart: it parses a
spec such as ``sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9`` and raises
`ValueError` with a readable message for a bad one.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.signal import lfilter, lfiltic

NAN = float("nan")
_CHUNK = 2048


# --- helpers -------------------------------------------------------------------

_local = threading.local()
# Inputs longer than this use fresh temporaries instead of the per-thread pool.
_SCRATCH_MAX = 4_000_000


def _scratch(slot: int, size: int) -> np.ndarray:
    """A reusable temporary of `size` floats for this thread.

    A fresh multi-megabyte array costs a page fault per 4 KiB on first touch,
    which is as much time as the arithmetic here; temporaries are therefore
    kept per thread (each slot holds the largest size asked so far).
    """
    if size > _SCRATCH_MAX:
        return np.empty(size)
    pool = _local.__dict__.setdefault("pool", {})
    buffer = pool.get(slot)
    if buffer is None or buffer.size < size:
        buffer = pool[slot] = np.empty(max(size, 1024))
    return buffer[:size]


def _as_array(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("indicator input must be one-dimensional")
    return array


def _check_period(period: int, name: str = "period", minimum: int = 2) -> int:
    if isinstance(period, bool) or int(period) != period or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {period!r}")
    return int(period)


def _nan(length: int) -> np.ndarray:
    return np.full(length, np.nan)


def _smooth(
    inputs: np.ndarray, gain: float, decay: float, first: int, seed: float
) -> np.ndarray:
    """y[first] = seed, y[i] = decay * y[i-1] + gain * inputs[i] after it, NaN
    before it; a new array as long as `inputs`. `inputs` (a temporary) is
    overwritten up to `first`: the recurrence then starts from zero and the
    seed enters as one input, so one C pass yields the whole output."""
    inputs[:first] = 0.0
    inputs[first] = seed / gain
    out = lfilter([gain], [1.0, -decay], inputs)
    out[first] = seed
    out[:first] = np.nan
    return out


def _running_sums(x: np.ndarray, n: int, out: np.ndarray) -> None:
    """Sums over the windows ending at n-1..N-1, written into `out`.

    Like TA-Lib, a running total adds the entering value and drops the leaving
    one; the total stays at the scale of one window, so its rounding error does
    not grow with the series' cumulative sum.
    """
    first = math.fsum(x[:n])
    out[0] = first
    if x.size > n:
        steps = np.subtract(x[n:], x[:-n], out=_scratch(0, x.size - n))
        steps[0] += first
        np.cumsum(steps, out=out[1:])


def _window_variance(x: np.ndarray, n: int, mean: np.ndarray, out: np.ndarray) -> None:
    """Population variance over windows ending at n-1..N-1, given their means.

    Deviations are taken from one anchor per chunk of windows before squaring
    and summing, so a price far from zero keeps its digits (sum(x^2) - n*m^2
    on raw prices cancels catastrophically).
    """
    count = x.size - n + 1
    full = count // _CHUNK
    if full:
        width = _CHUNK + n - 1
        rows = as_strided(
            x, shape=(full, width), strides=(_CHUNK * 8, 8), writeable=False
        )
        anchor = rows[:, n - 1 : n]
        squares = _scratch(1, full * width).reshape(full, width)
        np.subtract(rows, anchor, out=squares)
        np.multiply(squares, squares, out=squares)
        np.cumsum(squares, axis=1, out=squares)
        block = out[: full * _CHUNK].reshape(full, _CHUNK)
        block[:, 0] = squares[:, n - 1]
        np.subtract(squares[:, n:], squares[:, : _CHUNK - 1], out=block[:, 1:])
        block *= 1.0 / n
        offset = _scratch(2, full * _CHUNK).reshape(full, _CHUNK)
        np.subtract(mean[: full * _CHUNK].reshape(full, _CHUNK), anchor, out=offset)
        np.multiply(offset, offset, out=offset)
        block -= offset
    done = full * _CHUNK
    if done < count:
        windows = np.lib.stride_tricks.sliding_window_view(x[done:], n)
        deviations = windows - mean[done:, None]
        out[done:] = np.einsum("ij,ij->i", deviations, deviations) / n
    np.maximum(out, 0.0, out=out)


def _rolling_extreme(x: np.ndarray, n: int, op, slots: tuple[int, int]) -> np.ndarray:
    """op (max/min) over windows ending at n-1..N-1 by doubling spans
    (O(N log n)); returns a view into a scratch slot."""
    result = x
    span = 1
    turn = 0
    while span * 2 <= n:
        size = result.size - span
        target = _scratch(slots[turn], size)
        op(result[span:], result[:size], out=target)
        result, turn, span = target, 1 - turn, span * 2
    if result is x:  # n == 1: callers write into the result
        result = _scratch(slots[0], x.size)
        np.copyto(result, x)
    if span < n:
        shift = n - span
        size = result.size - shift
        target = _scratch(slots[turn], size)
        op(result[shift:], result[:size], out=target)
        result = target
    return result


# --- vectorized ----------------------------------------------------------------


def sma(values, period: int) -> np.ndarray:
    x = _as_array(values)
    n = _check_period(period, minimum=1)
    out = np.empty(x.size)
    out[: n - 1] = np.nan
    if x.size >= n:
        tail = out[n - 1 :]
        _running_sums(x, n, tail)
        tail *= 1.0 / n
    return out


def _ema(x: np.ndarray, period: int, seed_index: int) -> np.ndarray:
    """EMA seeded with the SMA of the `period` values ending at `seed_index`."""
    k = 2.0 / (period + 1)
    seed = float(np.mean(x[seed_index - period + 1 : seed_index + 1]))
    inputs = _scratch(3, x.size)
    np.copyto(inputs, x)
    return _smooth(inputs, k, 1.0 - k, seed_index, seed)


def ema(values, period: int) -> np.ndarray:
    x = _as_array(values)
    n = _check_period(period, minimum=1)
    if x.size < n:
        return _nan(x.size)
    return _ema(x, n, n - 1)


def rsi(closes, period: int = 14) -> np.ndarray:
    x = _as_array(closes)
    n = _check_period(period)
    if x.size <= n:
        return _nan(x.size)
    gains = _scratch(3, x.size)
    losses = _scratch(4, x.size)  # negative: the filter's gain flips the sign
    gains[0] = 0.0
    np.subtract(x[1:], x[:-1], out=gains[1:])
    np.minimum(gains, 0.0, out=losses)
    np.maximum(gains, 0.0, out=gains)
    gain0 = float(gains[1 : n + 1].sum()) / n
    loss0 = -float(losses[1 : n + 1].sum()) / n
    decay = (n - 1) / n
    avg_gain = _smooth(gains, 1.0 / n, decay, n, gain0)
    total = _smooth(losses, -1.0 / n, decay, n, loss0)
    total += avg_gain
    tail_total, tail_gain = total[n:], avg_gain[n:]
    if not tail_total.all():
        flat = tail_total == 0.0  # no move at all: TA-Lib says 0
        tail_total[flat] = 1.0
        tail_gain[flat] = 0.0
    np.divide(tail_gain, tail_total, out=tail_gain)
    tail_gain *= 100.0
    return avg_gain


def macd(
    closes, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_array(closes)
    fast = _check_period(fast, "fast period")
    slow = _check_period(slow, "slow period")
    signal = _check_period(signal, "signal period", minimum=1)
    if slow < fast:
        fast, slow = slow, fast
    start = slow - 1
    first = start + signal - 1
    if x.size <= first:
        return _nan(x.size), _nan(x.size), _nan(x.size)
    # TA-Lib seeds both EMAs at the slow EMA's first index. Their difference
    # is one second-order recurrence, run in a single C pass from that state.
    kf, ks = 2.0 / (fast + 1), 2.0 / (slow + 1)
    af, a_s = 1.0 - kf, 1.0 - ks
    fast0 = float(np.mean(x[start - fast + 1 : start + 1]))
    slow0 = float(np.mean(x[start - slow + 1 : start + 1]))
    numerator = [kf - ks, ks * af - kf * a_s]
    denominator = [1.0, -(af + a_s), af * a_s]
    before = (fast0 - kf * x[start]) / af - (slow0 - ks * x[start]) / a_s
    state = lfiltic(numerator, denominator, [fast0 - slow0, before], [x[start]])
    line = np.empty(x.size)
    line[start] = fast0 - slow0
    line[start + 1 :], _ = lfilter(numerator, denominator, x[start + 1 :], zi=state)
    k = 2.0 / (signal + 1)
    seed = float(np.mean(line[start : first + 1]))
    inputs = _scratch(3, x.size)
    np.copyto(inputs, line)
    sig = _smooth(inputs, k, 1.0 - k, first, seed)
    line[:first] = np.nan
    return line, sig, line - sig


def bollinger(
    closes, period: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_array(closes)
    n = _check_period(period)
    if x.size < n:
        return _nan(x.size), _nan(x.size), _nan(x.size)
    middle = sma(x, n)
    upper = np.empty(x.size)
    upper[: n - 1] = np.nan
    width = upper[n - 1 :]
    _window_variance(x, n, middle[n - 1 :], width)
    np.sqrt(width, out=width)
    width *= k
    lower = np.subtract(middle, upper)
    np.add(middle, upper, out=upper)
    return upper, middle, lower


def stochastic(
    highs, lows, closes, k: int = 14, d: int = 3, smooth: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastic: %K = SMA(smooth) of fast %K, %D = SMA(d) of %K."""
    h, lo, c = _as_array(highs), _as_array(lows), _as_array(closes)
    k = _check_period(k, "k period", minimum=1)
    d = _check_period(d, "d period", minimum=1)
    smooth = _check_period(smooth, "smoothing period", minimum=1)
    first = k - 1 + smooth - 1 + d - 1
    if c.size <= first:
        return _nan(c.size), _nan(c.size)
    span = _rolling_extreme(h, k, np.maximum, (5, 6))
    fast_k = _rolling_extreme(lo, k, np.minimum, (7, 8))
    np.subtract(span, fast_k, out=span)
    np.subtract(c[k - 1 :], fast_k, out=fast_k)
    if not span.all():
        empty = span == 0.0  # no range: TA-Lib says 0
        span[empty] = 1.0
        fast_k[empty] = 0.0
    fast_k *= 100.0
    np.divide(fast_k, span, out=fast_k)
    smoothed = _scratch(9, fast_k.size - smooth + 1)
    _running_sums(fast_k, smooth, smoothed)
    smoothed *= 1.0 / smooth
    slow_k = np.empty(c.size)
    slow_d = np.empty(c.size)
    slow_k[:first] = np.nan
    slow_d[:first] = np.nan
    slow_k[first:] = smoothed[d - 1 :]
    _running_sums(smoothed, d, slow_d[first:])
    slow_d[first:] *= 1.0 / d
    return slow_k, slow_d


def williams_r(highs, lows, closes, period: int = 14) -> np.ndarray:
    h, lo, c = _as_array(highs), _as_array(lows), _as_array(closes)
    n = _check_period(period)
    if c.size < n:
        return _nan(c.size)
    highest = _rolling_extreme(h, n, np.maximum, (5, 6))
    span = _rolling_extreme(lo, n, np.minimum, (7, 8))
    out = np.empty(c.size)
    out[: n - 1] = np.nan
    tail = np.subtract(highest, c[n - 1 :], out=out[n - 1 :])
    np.subtract(highest, span, out=span)
    if not span.all():
        empty = span == 0.0  # no range: TA-Lib says 0
        span[empty] = 1.0
        tail[empty] = 0.0
    tail *= -100.0
    np.divide(tail, span, out=tail)
    return out


def _true_range_into(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, out: np.ndarray
) -> None:
    previous = c[:-1]
    np.maximum(h[1:], previous, out=out[1:])
    low = np.minimum(lo[1:], previous, out=_scratch(4, c.size - 1))
    out[1:] -= low


def atr(highs, lows, closes, period: int = 14) -> np.ndarray:
    h, lo, c = _as_array(highs), _as_array(lows), _as_array(closes)
    n = _check_period(period, minimum=1)
    if c.size <= n:
        return _nan(c.size)
    tr = _scratch(3, c.size)
    _true_range_into(h, lo, c, tr)
    seed = float(np.mean(tr[1 : n + 1]))
    return _smooth(tr, 1.0 / n, (n - 1) / n, n, seed)


# --- incremental ---------------------------------------------------------------


class SMA:
    """Simple moving average, one value at a time."""

    __slots__ = ("period", "_window", "_sum", "_updates")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period, minimum=1)
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


class EMA:
    """EMA seeded with the SMA of the first `period` values, as TA-Lib does."""

    __slots__ = ("period", "k", "value", "_seed")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period, minimum=1)
        self.k = 2.0 / (self.period + 1)
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
        self.value = (1.0 - self.k) * self.value + self.k * x
        return self.value


class _Wilder:
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
        n = self.period
        self.value = (n - 1) / n * self.value + x / n
        return self.value


class RSI:
    """Wilder RSI; the first value comes with the (period+1)-th close."""

    __slots__ = ("period", "_previous", "_gain", "_loss", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period(period)
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
        fast = _check_period(fast, "fast period")
        slow = _check_period(slow, "slow period")
        if slow < fast:
            fast, slow = slow, fast
        self.fast, self.slow = fast, slow
        self.signal = _check_period(signal, "signal period", minimum=1)
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
        self.period = _check_period(period)
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
        k = _check_period(k, "k period", minimum=1)
        d = _check_period(d, "d period", minimum=1)
        smooth = _check_period(smooth, "smoothing period", minimum=1)
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
        self._extremes = _Extremes(_check_period(period))

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
        self.period = _check_period(period, minimum=1)
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


# --- chart specs -----------------------------------------------------------------


@dataclass(frozen=True)
class _SpecKind:
    params: tuple[str, ...]
    defaults: tuple[float, ...]
    floats: tuple[bool, ...]
    minimum: tuple[float, ...]


_MAX_PERIOD = 1000
_MAX_INDICATORS = 12
SPEC_KINDS: dict[str, _SpecKind] = {
    "sma": _SpecKind(("period",), (20,), (False,), (1,)),
    "ema": _SpecKind(("period",), (20,), (False,), (1,)),
    "bb": _SpecKind(("period", "k"), (20, 2.0), (False, True), (2, 0.1)),
    "rsi": _SpecKind(("period",), (14,), (False,), (2,)),
    "macd": _SpecKind(("fast", "slow", "signal"), (12, 26, 9), (False,) * 3, (2, 2, 1)),
    "stoch": _SpecKind(("k", "d", "smooth"), (14, 3, 3), (False,) * 3, (1, 1, 1)),
    "willr": _SpecKind(("period",), (14,), (False,), (2,)),
    "atr": _SpecKind(("period",), (14,), (False,), (1,)),
}


def parse_indicator_spec(spec: str) -> list[tuple[str, str, tuple]]:
    """`"sma:20,bb:20:2"` -> [("sma:20", "sma", (20,)), ("bb:20:2", "bb", (20, 2.0))].

    Omitted trailing parameters take their defaults (`rsi` means `rsi:14`).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty indicator spec; expected e.g. 'sma:20,rsi:14'")
    items = [item.strip() for item in spec.split(",")]
    if len(items) > _MAX_INDICATORS:
        raise ValueError(
            f"too many indicators ({len(items)}); at most {_MAX_INDICATORS}"
        )
    parsed: list[tuple[str, str, tuple]] = []
    for item in items:
        if not item:
            raise ValueError(f"empty item in indicator spec {spec!r}")
        name, *raw = item.split(":")
        name = name.strip().lower()
        kind = SPEC_KINDS.get(name)
        if kind is None:
            raise ValueError(
                f"unknown indicator {name!r} in {item!r}; known: {', '.join(SPEC_KINDS)}"
            )
        if len(raw) > len(kind.params):
            raise ValueError(
                f"{name} takes at most {len(kind.params)} parameter(s) "
                f"({':'.join(kind.params)}), got {len(raw)} in {item!r}"
            )
        values: list = []
        for position, param in enumerate(kind.params):
            if position >= len(raw):
                values.append(kind.defaults[position])
                continue
            text = raw[position].strip()
            try:
                number = float(text) if kind.floats[position] else int(text)
            except ValueError:
                wanted = "a number" if kind.floats[position] else "an integer"
                raise ValueError(
                    f"{name} {param} must be {wanted}, got {text!r} in {item!r}"
                ) from None
            low = kind.minimum[position]
            high = 10.0 if kind.floats[position] else _MAX_PERIOD
            if not (low <= number <= high) or number != number:
                raise ValueError(
                    f"{name} {param} must be between {low:g} and {high:g}, "
                    f"got {text!r} in {item!r}"
                )
            values.append(number)
        if name == "macd" and values[0] >= values[1]:
            raise ValueError(f"macd fast period must be shorter than slow in {item!r}")
        key = name + "".join(f":{v:g}" for v in values)
        parsed.append((key, name, tuple(values)))
    return parsed


def indicator_series(*, spec: str, opens, highs, lows, closes, volumes) -> dict:
    """Series for each indicator in `spec`, aligned to the input bars.

    Returns ``{normalized_spec: {line_name: ndarray}}`` where warm-up positions
    are NaN, e.g. ``{"bb:20:2": {"upper": ..., "middle": ..., "lower": ...}}``.
    Line names: sma/ema/rsi/willr/atr -> the indicator's name; bb -> upper,
    middle, lower; macd -> macd, signal, hist; stoch -> k, d.
    """
    parsed = parse_indicator_spec(spec)
    h, lo, c = _as_array(highs), _as_array(lows), _as_array(closes)
    if not (h.size == lo.size == c.size):
        raise ValueError("highs, lows and closes must have the same length")
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, name, params in parsed:
        if name in ("sma", "ema", "rsi"):
            fn = {"sma": sma, "ema": ema, "rsi": rsi}[name]
            out[key] = {name: fn(c, int(params[0]))}
        elif name == "bb":
            upper, middle, lower = bollinger(c, int(params[0]), params[1])
            out[key] = {"upper": upper, "middle": middle, "lower": lower}
        elif name == "macd":
            line, signal, hist = macd(c, *(int(p) for p in params))
            out[key] = {"macd": line, "signal": signal, "hist": hist}
        elif name == "stoch":
            k, d = stochastic(h, lo, c, *(int(p) for p in params))
            out[key] = {"k": k, "d": d}
        elif name == "willr":
            out[key] = {"willr": williams_r(h, lo, c, int(params[0]))}
        elif name == "atr":
            out[key] = {"atr": atr(h, lo, c, int(params[0]))}
    return out


def indicators_warmup(*, spec: str) -> int:
    """Bars to load before the first displayed one so every indicator in
    `spec` is defined (and exponential/Wilder ones have converged) from the
    first displayed bar on. Raises ValueError for a bad spec."""
    bars = 0
    for _key, name, params in parse_indicator_spec(spec):
        if name in ("sma", "bb", "willr"):
            need = int(params[0])
        elif name == "ema":
            need = 4 * int(params[0])
        elif name in ("rsi", "atr"):
            need = 10 * int(params[0]) + 1
        elif name == "macd":
            need = 4 * int(params[1]) + int(params[2])
        else:  # stoch
            need = int(params[0]) + int(params[1]) + int(params[2])
        bars = max(bars, need)
    return min(bars, 2 * _MAX_PERIOD)


def indicator_payload(*, spec: str, rows, skip: int = 0) -> dict:
    """JSON-ready series for chart rows `(ts, open, high, low, close, volume,
    ...)`: computed over all rows, the first `skip` (warm-up) dropped, NaN as
    None. Same shape as `indicator_series`, with lists."""
    columns = list(zip(*rows, strict=False)) if rows else [()] * 6
    series = indicator_series(
        spec=spec,
        opens=np.asarray(columns[1], dtype=np.float64),
        highs=np.asarray(columns[2], dtype=np.float64),
        lows=np.asarray(columns[3], dtype=np.float64),
        closes=np.asarray(columns[4], dtype=np.float64),
        volumes=np.asarray(columns[5], dtype=np.float64),
    )
    return {
        key: {
            line: [None if v != v else float(v) for v in values[skip:].tolist()]
            for line, values in lines.items()
        }
        for key, lines in series.items()
    }

"""Vectorized indicators over whole arrays.

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
"""

from __future__ import annotations

import math
import threading

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


def as_array(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("indicator input must be one-dimensional")
    return array


def check_period(period: int, name: str = "period", minimum: int = 2) -> int:
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
    x = as_array(values)
    n = check_period(period, minimum=1)
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
    x = as_array(values)
    n = check_period(period, minimum=1)
    if x.size < n:
        return _nan(x.size)
    return _ema(x, n, n - 1)


def rsi(closes, period: int = 14) -> np.ndarray:
    x = as_array(closes)
    n = check_period(period)
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
    x = as_array(closes)
    fast = check_period(fast, "fast period")
    slow = check_period(slow, "slow period")
    signal = check_period(signal, "signal period", minimum=1)
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
    x = as_array(closes)
    n = check_period(period)
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
    h, lo, c = as_array(highs), as_array(lows), as_array(closes)
    k = check_period(k, "k period", minimum=1)
    d = check_period(d, "d period", minimum=1)
    smooth = check_period(smooth, "smoothing period", minimum=1)
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
    h, lo, c = as_array(highs), as_array(lows), as_array(closes)
    n = check_period(period)
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
    h, lo, c = as_array(highs), as_array(lows), as_array(closes)
    n = check_period(period, minimum=1)
    if c.size <= n:
        return _nan(c.size)
    tr = _scratch(3, c.size)
    _true_range_into(h, lo, c, tr)
    seed = float(np.mean(tr[1 : n + 1]))
    return _smooth(tr, 1.0 / n, (n - 1) / n, n, seed)

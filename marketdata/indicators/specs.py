"""The chart's indicator specs.

`indicator_series(spec=..., opens=..., ...)` serves the chart: it parses a
spec such as ``sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9`` and raises
`ValueError` with a readable message for a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketdata.indicators.vectorized import (
    as_array,
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
    stochastic,
    williams_r,
)


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
    h, lo, c = as_array(highs), as_array(lows), as_array(closes)
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

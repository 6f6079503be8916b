"""Timestamp and number helpers shared by the provider parsers.

Providers send RFC-3339 strings with 0-9 fractional digits (Alpaca), epoch
milliseconds (Finnhub, Binance), epoch microseconds (Binance with
`timeUnit=MICROSECOND`) or epoch seconds (Finnhub REST). Everything becomes an
aware UTC `datetime`; sub-microsecond digits are truncated, never rounded, so a
timestamp never moves into the next microsecond (or minute).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat
_fromtimestamp = datetime.fromtimestamp

# Below 2**32 s (year 2106) a float count of seconds is within a quarter of a
# microsecond of the exact instant (half an ulp), and `fromtimestamp` rounds to
# the nearest microsecond, so an integral number of ms or µs converts exactly;
# beyond it (and before 1970) the exact `timedelta` arithmetic is used.
_EXACT_SECONDS = 2**32
_EXACT_MS = _EXACT_SECONDS * 1000
_EXACT_US = _EXACT_SECONDS * 1_000_000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?\Z"
)


def parse_rfc3339(value: str) -> datetime:
    """`2021-02-22T15:51:45.335689322Z` -> aware UTC datetime (µs kept).

    Raises ValueError for anything else. A missing offset is read as UTC.
    """
    # Fast path for the shape every provider sends, `YYYY-MM-DDTHH:MM:SS[.f]Z`
    # with 1-9 ASCII fraction digits: CPython's C `fromisoformat` reads it
    # exactly (strict digits, sub-µs digits truncated, tzinfo `UTC` itself).
    # It also reads shapes RFC 3339 forbids (week dates, `,` fractions, more
    # than 9 digits), so the guard admits only the canonical layout; anything
    # else, or a date it rejects, takes the reference path below.
    if value.isascii() and value[4:17:3] == "--T::" and value[-1:] == "Z":
        n = len(value)
        if n == 20 or (value[19] == "." and 22 <= n <= 30 and value[20:-1].isdigit()):
            try:
                return _fromisoformat(value)
            except ValueError:
                pass
    return parse_rfc3339_reference(value)


def parse_rfc3339_reference(value: str) -> datetime:
    """The straightforward regex parser `parse_rfc3339` must agree with."""
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"not an RFC-3339 timestamp: {value[:40]!r}")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    ts = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        micro,
        tzinfo=UTC,
    )
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        ts -= sign * delta
    return ts


def from_epoch_ms(value: int | float) -> datetime:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"not an epoch-ms number: {value!r}")
        value = int(value)
    if 0 <= value < _EXACT_MS:
        return _fromtimestamp(value / 1000, UTC)
    return EPOCH + timedelta(milliseconds=value)


def from_epoch_us(value: int) -> datetime:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"not an epoch-µs number: {value!r}")
        value = int(value)
    if 0 <= value < _EXACT_US:
        return _fromtimestamp(value / 1_000_000, UTC)
    return EPOCH + timedelta(microseconds=value)


def from_epoch_seconds(value: int | float) -> datetime:
    if type(value) is int and 0 <= value < _EXACT_SECONDS:
        return _fromtimestamp(value, UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not an epoch-seconds number: {value!r}")
    return EPOCH + timedelta(seconds=value)


def from_epoch_auto(value: int | float) -> datetime:
    """Epoch number of unknown unit: seconds, milliseconds or microseconds,
    decided by magnitude (seconds would have to be past the year 5000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not an epoch number: {value!r}")
    if abs(value) >= 1e14:
        return from_epoch_us(int(value))
    if abs(value) >= 1e11:
        return from_epoch_ms(value)
    return from_epoch_seconds(value)


def to_epoch_ms(ts: datetime) -> int:
    delta = ts.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def to_rfc3339(ts: datetime) -> str:
    """Aware datetime -> `2024-01-02T14:30:00Z` (fraction only when present)."""
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


def decimal_from_float_reference(value: float) -> Decimal:
    """The straightforward float conversion `to_decimal` must agree with."""
    result = Decimal(repr(value))
    if not result.is_finite():
        raise ValueError("non-finite number")
    return result


def _from_str(value: str) -> Decimal:
    try:
        result = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value[:40]!r}") from None
    if not result.is_finite():
        raise ValueError(f"non-finite number: {value[:40]!r}")
    return result


# Prices repeat a lot within a feed (an instrument's bid and ask move a tick at
# a time), and `Decimal(repr(x))` costs several times a dict lookup. Decimals
# are immutable, so one instance can be shared. Keys are floats only (1 == 1.0
# would otherwise map an int onto `Decimal("1.0")`), zeros are never stored
# (0.0 == -0.0, yet they convert to different Decimals) and NaN never matches
# itself. Cleared when full rather than LRU: cheap, and the hot set refills
# at once. Only prices use it: sizes and volumes rarely repeat (fractional
# crypto sizes almost never), so caching them would only evict prices.
_PRICE_CACHE: dict[float, Decimal] = {}
_PRICE_CACHE_SIZE = 16_384


def _price_from_float(value: float) -> Decimal:
    result = Decimal(repr(value))
    if not result.is_finite():
        raise ValueError("non-finite number")
    if value:
        if len(_PRICE_CACHE) >= _PRICE_CACHE_SIZE:
            _PRICE_CACHE.clear()
        _PRICE_CACHE[value] = result
    return result


# Integer sizes and volumes (share counts) repeat too; `Decimal(n)` is exact,
# and the keys are exact ints only (never bools, never floats).
_INT_CACHE: dict[int, Decimal] = {}
_INT_CACHE_SIZE = 16_384


def _from_int(value: int) -> Decimal:
    result = Decimal(value)
    if len(_INT_CACHE) >= _INT_CACHE_SIZE:
        _INT_CACHE.clear()
    _INT_CACHE[value] = result
    return result


_DECIMAL_FROM = {int: _from_int, float: decimal_from_float_reference, str: _from_str}


def to_decimal(value: object) -> Decimal:
    """A JSON number or numeric string -> Decimal with the digits as sent.

    Floats go through `repr()` (shortest round-trip form), so `87.66` stays
    `Decimal("87.66")` rather than its binary expansion. Booleans and other
    types raise ValueError.
    """
    if type(value) is int:
        result = _INT_CACHE.get(value)
        if result is not None:
            return result
    convert = _DECIMAL_FROM.get(type(value))
    if convert is None:
        raise ValueError(f"not a number: {type(value).__name__}")
    return convert(value)


def price_to_decimal(value: object) -> Decimal:
    """`to_decimal` for prices: the same result, float conversions cached."""
    if type(value) is float:
        result = _PRICE_CACHE.get(value)
        if result is None:
            result = _price_from_float(value)
        return result
    return to_decimal(value)

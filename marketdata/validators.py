from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./-]{0,14}$")


def validate_symbol(value: str) -> None:
    """Canonical symbols: upper-case letters, digits, `.`, `-`, `/`; ≤ 15 chars."""
    if not isinstance(value, str) or not SYMBOL_RE.match(value):
        raise ValidationError(
            "%(value)r is not a valid symbol: use 1–15 upper-case letters, digits, "
            "'.', '-' or '/', starting with a letter or digit (e.g. AAPL, BRK.B, "
            "BTC/USD).",
            code="invalid_symbol",
            params={"value": value},
        )

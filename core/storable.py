"""Text PostgreSQL can store, checked where input enters.

PostgreSQL `text` and `jsonb` cannot hold NUL (U+0000), and UTF-8 cannot
encode a lone surrogate (U+D800..U+DFFF), which a Python string can still
carry (e.g. decoded from the JSON escape "\\ud800"). Either one reaching a
query makes the driver raise mid-request (a 500, a closed WebSocket), so the
edges refuse them first: `core.middleware.UnstorableInputMiddleware` for
HTTP paths and query strings, `validate_storable` for forms, admin and the
WebSocket consumer. Django's own form `CharField` already refuses NUL
("Null characters are not allowed.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Validation error codes that mean "cannot be stored" (Django's, then ours).
UNSTORABLE_CODES = frozenset({"null_characters_not_allowed", "unstorable"})


def unstorable_reason(value: object) -> str | None:
    """What in `value` (a string, or JSON-like lists and dicts of them, keys
    included) cannot be stored, e.g. "a NUL character (U+0000)"; None when
    everything can."""
    if isinstance(value, str):
        found = UNSTORABLE.search(value)
        if found is None:
            return None
        char = found.group()
        if char == "\x00":
            return "a NUL character (U+0000)"
        return f"an unpaired surrogate (U+{ord(char):04X})"
    if isinstance(value, Mapping):
        for key, item in value.items():
            reason = unstorable_reason(key) or unstorable_reason(item)
            if reason:
                return reason
    elif isinstance(value, list | tuple):
        for item in value:
            reason = unstorable_reason(item)
            if reason:
                return reason
    return None


def validate_storable(value: object) -> None:
    """Django validator: refuse what PostgreSQL cannot store."""
    reason = unstorable_reason(value)
    if reason:
        raise ValidationError(
            "Contains %(reason)s, which cannot be stored; remove it.",
            code="unstorable",
            params={"reason": reason},
        )


class StorableJSONField(forms.JSONField):
    """`forms.JSONField` that refuses strings jsonb cannot hold ("\\u0000",
    lone surrogate escapes) instead of failing on save."""

    default_validators = [validate_storable]

    def bound_data(self, data, initial):
        value = super().bound_data(data, initial)
        if unstorable_reason(value):
            # Redisplay what was typed: re-encoding a lone surrogate would
            # fail while rendering the page.
            return InvalidJSONInput(data)
        return value

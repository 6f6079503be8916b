"""Channel-layer group names: the one place that maps symbols to groups.

Channels allows only ASCII letters, digits, `-`, `_` and `.` in group names, under
100 characters, so `BTC/USD` becomes `sym.BTC-USD`. Canonical symbols never
contain `-` next to `/` ambiguity: `/` maps to `-`, `.` stays (`BRK.B` ->
`sym.BRK.B`), and a literal `-` is escaped as `_` (`BF-B` -> `sym.BF_B`).
"""

from __future__ import annotations

SYMBOL_PREFIX = "sym."
USER_PREFIX = "user."
STATUS_GROUP = "feed.status"
# Staff users' sockets: ops alerts from the feed monitor (streaming.monitor).
STAFF_GROUP = "staff"


def symbol_group(symbol: str) -> str:
    return SYMBOL_PREFIX + symbol.replace("-", "_").replace("/", "-")


def user_group(user_id: int) -> str:
    return f"{USER_PREFIX}{int(user_id)}"

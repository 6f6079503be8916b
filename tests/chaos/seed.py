"""The chaos user's edits, made inside the stack's own Django through the
project's services, as a user's edits are.

`serve()` runs in `manage.py shell -c` for the whole life of a stack and
answers one JSON request per line on stdin (`{"op": ..., "args": {...}}`)
with one JSON line on stdout, so a test arms alert rules in milliseconds
instead of a Django start-up's seconds (simulated minutes at a fast clock).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal


def user_with_watchlist(*, username: str, symbols: list[str]) -> dict:
    from django.contrib.auth import get_user_model

    from marketdata.services import watchlist_create

    owner = get_user_model().objects.create_user(
        username=username, password="chaos-pass-123"
    )
    watchlist_create(owner=owner, name="Chaos", symbols=symbols)
    return {"user": owner.id}


def price_rules(*, username: str, rules: list[dict]) -> dict:
    """One-shot price rules ({symbol, direction, level, note}); their ids."""
    from django.contrib.auth import get_user_model

    from alerts.services import alert_rule_create
    from marketdata.models import Instrument

    owner = get_user_model().objects.get(username=username)
    ids = []
    for spec in rules:
        rule = alert_rule_create(
            owner=owner,
            instrument=Instrument.objects.get(symbol=spec["symbol"]),
            kind="price",
            direction=spec["direction"],
            level=Decimal(spec["level"]),
            one_shot=True,
            cooldown_seconds=0,
            note=spec.get("note", ""),
        )
        ids.append(rule.id)
    return {"ids": ids}


OPERATIONS = {"user_with_watchlist": user_with_watchlist, "price_rules": price_rules}


def serve() -> None:
    from django.db import connection

    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = OPERATIONS[request["op"]](**request.get("args", {}))
        except Exception as exc:  # answered, the console keeps going
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            connection.close()  # the database may be restarted between requests
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

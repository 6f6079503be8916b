"""The demo account `make demo` prints: a login, watchlists and a few positions.

`simulator_answering` lets the demo's setup commands (run before the demo's
own simulator starts) ask the simulator: when the configured provider is the
built-in simulator and none answers on its port, a temporary
`manage.py simulate_exchange` process serves (the same seed, so the same
prices) until the block ends. A process, not an import: production code does
not import the simulator package (import-linter).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from marketdata.models import Position, Transaction, Watchlist
from marketdata.selectors import instruments_by_symbol
from marketdata.services import watchlist_create, watchlist_items_add

DEMO_WATCHLISTS = {
    "Tech": ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "AMD"],
    "Index ETFs": ["SPY", "QQQ", "DIA", "IWM", "SMH"],
    "Crypto": ["BTC/USD", "ETH/USD", "SOL/USD"],
}
DEMO_EMAIL = "demo@tapeline.invalid"
DEMO_POSITIONS = {
    "AAPL": (Decimal("40"), Decimal("182.50")),
    "NVDA": (Decimal("25"), Decimal("118.20")),
    "SPY": (Decimal("10"), Decimal("512.00")),
    "BTC/USD": (Decimal("0.25"), Decimal("61250.00")),
}


def demo_setup(*, username: str, password: str) -> tuple[object, bool]:
    """Create (or reset the password of) the demo user and give it the demo
    watchlists (filling any that are empty) and positions. Returns (user, created)."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        # An address, so the demo's alert emails print in the worker's output.
        user.email = user.email or DEMO_EMAIL
        user.save(update_fields=["password", "email"])
        for name, symbols in DEMO_WATCHLISTS.items():
            watchlist = Watchlist.objects.filter(owner=user, name=name).first()
            if watchlist is None:
                watchlist_create(owner=user, name=name, symbols=symbols)
            elif not watchlist.items.exists():
                watchlist_items_add(watchlist=watchlist, symbols=symbols)
        instruments = instruments_by_symbol(symbols=DEMO_POSITIONS)
        for symbol, (quantity, cost) in DEMO_POSITIONS.items():
            if symbol in instruments:
                position, made = Position.objects.get_or_create(
                    owner=user,
                    instrument=instruments[symbol],
                    defaults={"quantity": quantity, "average_cost": cost},
                )
                if made:
                    # One buy without fee folds to exactly this quantity and
                    # cost (portfolio.ledger), so the aggregate stays true.
                    Transaction.objects.create(
                        position=position,
                        kind="buy",
                        date=timezone.localdate() - timedelta(days=30),
                        quantity=quantity,
                        price=cost,
                        note="Demo opening buy",
                    )
    return user, created


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


#: how long a temporary simulator may take to answer (Django and numpy import)
SIMULATOR_START_SECONDS = 60.0


def _simulator_start() -> subprocess.Popen:
    """Start `manage.py simulate_exchange` on the configured address and wait
    until its port answers; a clear error with its output if it does not."""
    env = os.environ | {
        "SIMULATOR_KEY_ID": settings.SIMULATOR_KEY_ID,
        "SIMULATOR_SECRET": settings.SIMULATOR_SECRET,
        "SIMULATOR_FINNHUB_TOKEN": settings.SIMULATOR_FINNHUB_TOKEN,
    }
    host, port = settings.SIMULATOR_HOST, settings.SIMULATOR_PORT
    output = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "simulate_exchange",
            "--host",
            host,
            "--port",
            str(port),
            "--seed",
            str(settings.SIMULATOR_SEED),
            "--hours",
            "extended",  # as the Procfile's simulator
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + SIMULATOR_START_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if _port_open(host, port):
            output.close()
            return process
        time.sleep(0.1)
    _simulator_stop(process)
    output.seek(0)
    tail = output.read().decode(errors="replace")[-1000:]
    output.close()
    raise RuntimeError(
        f"the simulator did not start on {host}:{port}: {tail.strip() or 'no output'}"
    )


def _simulator_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def simulator_answering() -> Iterator[None]:
    """Within the block the configured simulator answers (see the module
    docstring); nothing is started for other providers or a running one."""
    process = None
    if settings.TAPELINE_PROVIDER == "simulator" and not _port_open(
        settings.SIMULATOR_HOST, settings.SIMULATOR_PORT
    ):
        process = _simulator_start()
    try:
        yield
    finally:
        if process is not None:
            _simulator_stop(process)

"""Local HTTP endpoints for delivery tests: a webhook receiver (http.server
in a thread, on a real loopback socket) that records each request and
answers from a script, and a helper to fire alerts (the worker fixture is in conftest)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts.engine import FiredAlert


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow endpoint)
    hold: threading.Event | None = None  # answer only once this is set


@dataclass
class Request:
    path: str
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """`with Receiver([Answer(500), Answer(200)]) as r:` then POST to r.url;
    past the script every request gets `default`."""

    def __init__(
        self, script: list[Answer] | None = None, default: Answer | None = None
    ):
        self.script = list(script or [])
        self.default = default or Answer()
        self.requests: list[Request] = []
        self.requests_at: dict[str, float] = {}  # alert id → perf_counter (bench)
        self.answered = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    request = Request(self.path, dict(self.headers.items()), body)
                    receiver.requests.append(request)
                    receiver._stamp(request)
                    answer = (
                        receiver.script.pop(0) if receiver.script else receiver.default
                    )
                if answer.hold is not None:
                    answer.hold.wait(30)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up (timed out)
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _stamp(self, request: Request) -> None:
        try:
            alert_id = str(request.json()["alert"]["id"])
        except (ValueError, KeyError, TypeError):
            return
        self.requests_at.setdefault(alert_id, time.perf_counter())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify_signature(request: Request, secret: str, *, max_age: float = 300) -> bool:
    """What a receiver does (the README's snippet): HMAC-SHA256 over
    timestamp + "." + raw body, constant-time compare, fresh timestamp."""
    timestamp = request.headers.get("X-Tapeline-Timestamp", "")
    sent = request.headers.get("X-Tapeline-Signature", "")
    expected = (
        "sha256="
        + hmac.new(
            secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
    )
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= max_age
    return fresh and hmac.compare_digest(sent, expected)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def fired(rule, *, seconds: int = 0, price: str = "151") -> FiredAlert:
    """One firing of `rule` (as the engine makes it)."""
    ts = datetime(2024, 5, 1, 14, 30, tzinfo=UTC) + timedelta(seconds=seconds)
    symbol = rule.instrument.symbol
    return FiredAlert(
        rule_id=rule.pk,
        owner_id=rule.owner_id,
        instrument_id=rule.instrument_id,
        symbol=symbol,
        kind="price",
        direction="above",
        level=float(rule.level),
        ts=ts,
        price=Decimal(price),
        value=float(price),
        previous=float(rule.level) - 1,
        values={"level": float(rule.level)},
        message=f"{symbol} crossed above {rule.level.normalize():f} (last {price})",
        note=rule.note,
        notify_email=rule.notify_email,
    )

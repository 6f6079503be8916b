"""Replay of a recording (format: `streaming.recording`) through the
simulator's own protocols (`simulate_exchange --replay FILE [--speed N]`).

The replay clock starts when the first client has subscribed to
something; frames are then delivered at their recorded pace divided by
`speed`, through the same protocol (handshake, auth, subscriptions handled
live by the simulator). Each recorded data message goes to the connected
sessions of the same provider that subscribed to its symbol/stream, encoded
the way the session asked (JSON or msgpack for Alpaca; raw or combined for
Binance). Recorded control frames (welcome, auth, subscription acks, pings)
are not replayed: the simulator produces its own. REST keeps serving the
simulated history.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import msgpack
import orjson

from simulator.alpaca_stream import AlpacaSession
from simulator.binance_stream import BinanceSession
from simulator.finnhub import FinnhubSession
from simulator.state import ExchangeState
from simulator.tape import parse_time_ns, rfc3339_ns
from simulator.wire import json_frame, msgpack_frame
from streaming.recording import read_frames, recording_files

log = logging.getLogger(__name__)

_ALPACA_DATA = {"t", "q", "b", "u", "d", "s", "l", "c", "x", "o", "i", "n"}
_ALPACA_CHANNEL = {
    "t": "trades",
    "q": "quotes",
    "b": "bars",
    "u": "updatedBars",
    "d": "dailyBars",
    "s": "statuses",
    "l": "lulds",
    "c": "trades",
    "x": "trades",
    "o": "orderbooks",
}


def _alpaca_messages(frame: str | bytes) -> list[dict]:
    try:
        data = (
            msgpack.unpackb(frame) if isinstance(frame, bytes) else orjson.loads(frame)
        )
    except Exception:
        return []
    if not isinstance(data, list):
        return []
    return [m for m in data if isinstance(m, dict) and m.get("T") in _ALPACA_DATA]


def _to_timestamp(value):
    if isinstance(value, str):
        try:
            return msgpack.Timestamp.from_unix_nano(parse_time_ns(value))
        except ValueError:
            return value
    return value


def _to_text_time(value):
    if isinstance(value, msgpack.Timestamp):
        return rfc3339_ns(value.to_unix_nano())
    return value


def _binance_stream(url: str, payload: dict) -> str | None:
    kind = payload.get("e")
    symbol = str(payload.get("s", "")).lower()
    if kind == "trade":
        return f"{symbol}@trade"
    if kind == "aggTrade":
        return f"{symbol}@aggTrade"
    if kind == "kline":
        return f"{symbol}@kline_{payload.get('k', {}).get('i', '1m')}"
    if kind is None and {"u", "b", "a"} <= set(payload):
        return f"{symbol}@bookTicker"
    path = urlparse(url).path
    if path.startswith("/ws/") and "/" not in path[4:]:
        return path[4:]
    return None


class Replayer:
    """Feeds recorded frames to connected sessions at `speed`× their pace."""

    def __init__(self, path: str | Path, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("replay speed must be positive")
        recording_files(path)  # fail early on a missing file
        self.path = path
        self.speed = speed
        self._frames = read_frames(path)
        self._next: dict | None = None
        self._origin: float | None = None  # recorded time at replay start
        self._started_at: float | None = None  # loop time at replay start
        self.delivered = 0
        self.finished = False

    def _peek(self) -> dict | None:
        if self._next is None:
            self._next = next(self._frames, None)
        return self._next

    def tick(self, sim: ExchangeState, loop_time: float) -> None:
        if self.finished:
            return
        if self._started_at is None:
            if not any(_subscribed(s) for s in sim.sessions):
                return
            first = self._peek()
            if first is None:
                self._finish()
                return
            self._origin = float(first["t"])
            self._started_at = loop_time
        now = self._origin + (loop_time - self._started_at) * self.speed
        while True:
            record = self._peek()
            if record is None:
                self._finish()
                return
            if float(record["t"]) > now:
                return
            self._next = None
            self.deliver(sim, record)

    def _finish(self) -> None:
        self.finished = True
        log.info(
            "replay of %s finished (%d frames delivered)", self.path, self.delivered
        )

    def deliver(self, sim: ExchangeState, record: dict) -> None:
        provider = record.get("provider")
        frame = record.get("frame")
        url = record.get("url", "")
        if provider in ("alpaca", "simulator"):
            self._deliver_alpaca(sim, url, frame)
        elif provider == "finnhub":
            self._deliver_finnhub(sim, frame)
        elif provider == "binance":
            self._deliver_binance(sim, url, frame)

    def _deliver_alpaca(self, sim, url: str, frame) -> None:
        messages = _alpaca_messages(frame)
        if not messages:
            return
        crypto = "/crypto/" in urlparse(url).path
        for session in list(sim.sessions):
            if not isinstance(session, AlpacaSession) or not session.authenticated:
                continue
            if session.crypto != crypto:
                continue
            chosen = [
                m
                for m in messages
                if _ALPACA_CHANNEL.get(m["T"]) in session.subs
                and (
                    m.get("S") in session.subs[_ALPACA_CHANNEL[m["T"]]]
                    or "*" in session.subs[_ALPACA_CHANNEL[m["T"]]]
                )
            ]
            if not chosen:
                continue
            if session.binary:
                parts = [
                    msgpack.packb({**m, "t": _to_timestamp(m.get("t"))}) for m in chosen
                ]
                session.send_data(msgpack_frame(parts))
            else:
                parts = [
                    orjson.dumps({**m, "t": _to_text_time(m.get("t"))}) for m in chosen
                ]
                session.send_data(json_frame(parts))
            self.delivered += 1

    def _deliver_finnhub(self, sim, frame) -> None:
        try:
            data = orjson.loads(frame)
        except Exception:
            return
        if not isinstance(data, dict) or data.get("type") != "trade":
            return
        items = [i for i in data.get("data") or [] if isinstance(i, dict)]
        for session in list(sim.sessions):
            if not isinstance(session, FinnhubSession):
                continue
            chosen = [i for i in items if i.get("s") in session.subs]
            if chosen:
                session.send_data(orjson.dumps({"data": chosen, "type": "trade"}))
                self.delivered += 1

    def _deliver_binance(self, sim, url: str, frame) -> None:
        try:
            data = orjson.loads(frame)
        except Exception:
            return
        if not isinstance(data, dict) or "result" in data or "error" in data:
            return
        if "stream" in data and "data" in data:
            stream, payload = data["stream"], data["data"]
        else:
            stream, payload = _binance_stream(url, data), data
        if stream is None:
            return
        body = orjson.dumps(payload)
        for session in list(sim.sessions):
            if isinstance(session, BinanceSession) and stream in session.streams:
                if session.combined:
                    session.send_data(
                        b'{"stream":' + orjson.dumps(stream) + b',"data":' + body + b"}"
                    )
                else:
                    session.send_data(body)
                self.delivered += 1


def _subscribed(session) -> bool:
    """Whether a session asked for data yet (starts the replay clock)."""
    subs = getattr(session, "subs", None)
    if getattr(session, "provider", "") == "alpaca":
        return bool(session.authenticated and any(subs.values()))
    if subs is not None:
        return bool(subs)
    return bool(getattr(session, "streams", None))

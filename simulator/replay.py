"""Recording format of received stream frames, and its replay.

Format (written by `start_streams --record FILE` through `FrameRecorder`, read
by `simulate_exchange --replay FILE [--speed N]`):

- gzip-compressed JSON lines, one line per frame received from a provider:
  `{"t": <receive time, epoch seconds, float>, "provider": "alpaca"|"finnhub"|
  "binance"|..., "url": "<WebSocket URL the frame came from>", "frame": "<raw
  text frame>"}`; binary frames (Alpaca msgpack) as `"frame": {"b64": "..."}`.
- Daily rotation: `FrameRecorder("rec/feed.jsonl.gz")` writes each UTC day's
  frames to `rec/feed.2026-11-22.jsonl.gz` (the date goes before the first
  suffix of the name). `--replay` accepts one such daily file, or the base
  name, which replays every day found, in date order. A file cut short by a
  crash replays up to the last complete line.

Replay: the replay clock starts when the first client has subscribed to
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

import base64
import gzip
import logging
import re
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import msgpack
import orjson

log = logging.getLogger("simulator.replay")

_DATE = re.compile(r"\.(\d{4}-\d{2}-\d{2})(\.[^/]*)?$")


def _split_name(path: Path) -> tuple[str, str]:
    """("feed", ".jsonl.gz") for feed.jsonl.gz."""
    name = path.name
    stem, dot, rest = name.partition(".")
    return stem, (dot + rest) if dot else ""


def daily_path(base: str | Path, day: str) -> Path:
    base = Path(base)
    stem, suffix = _split_name(base)
    return base.with_name(f"{stem}.{day}{suffix}")


class FrameRecorder:
    """Appends received frames to the day's gzip JSON-lines file.

    Thread-safe; call `close()` at shutdown (lines are flushed every
    `flush_every` frames and on rotation/close)."""

    def __init__(self, path: str | Path, *, flush_every: int = 200) -> None:
        self.base = Path(path)
        self.base.parent.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self._day: str | None = None
        self._file: gzip.GzipFile | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self.frames_written = 0

    @property
    def current_path(self) -> Path | None:
        return daily_path(self.base, self._day) if self._day else None

    def write(
        self,
        provider: str,
        url: str,
        frame: str | bytes,
        received_at: float | datetime,
    ) -> None:
        if isinstance(received_at, datetime):
            received_at = received_at.timestamp()
        if isinstance(frame, bytes | bytearray | memoryview):
            payload: object = {"b64": base64.b64encode(bytes(frame)).decode()}
        else:
            payload = frame
        line = orjson.dumps(
            {
                "t": float(received_at),
                "provider": provider,
                "url": url,
                "frame": payload,
            }
        )
        day = datetime.fromtimestamp(received_at, tz=UTC).strftime("%Y-%m-%d")
        with self._lock:
            if day != self._day:
                self._close_file()
                self._day = day
                self._file = gzip.open(daily_path(self.base, day), "ab")
            self._file.write(line + b"\n")
            self.frames_written += 1
            self._pending += 1
            if self._pending >= self.flush_every:
                self._file.flush()
                self._pending = 0

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                self._pending = 0

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        with self._lock:
            self._close_file()

    def __enter__(self) -> FrameRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recording_files(path: str | Path) -> list[Path]:
    """The daily files to replay for `path` (a daily file or the base name)."""
    path = Path(path)
    if path.is_file():
        return [path]
    stem, suffix = _split_name(path)
    pattern = re.compile(
        re.escape(stem) + r"\.(\d{4}-\d{2}-\d{2})" + re.escape(suffix) + "$"
    )
    found = sorted(
        (p for p in path.parent.glob(f"{stem}.*") if pattern.match(p.name)),
        key=lambda p: pattern.match(p.name).group(1),
    )
    if not found:
        raise FileNotFoundError(
            f"no recording at {path} (nor daily files {stem}.YYYY-MM-DD{suffix})"
        )
    return found


def _gzip_lines(file: Path, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Lines of a (possibly multi-member, possibly truncated) gzip file.
    Decompresses incrementally so a cut-off tail loses only its last line."""
    decompressor = zlib.decompressobj(wbits=31)
    pending = b""
    with file.open("rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            while chunk:
                try:
                    pending += decompressor.decompress(chunk)
                except zlib.error:
                    log.warning(
                        "recording %s is corrupt; replaying what was read", file
                    )
                    chunk = b""
                    break
                if decompressor.eof:  # next gzip member (appended session)
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                else:
                    chunk = b""
            *lines, pending = pending.split(b"\n")
            yield from lines
    if pending:
        log.warning("recording %s ends early; replaying what was read", file)


def read_frames(path: str | Path) -> Iterator[dict]:
    """Recorded frames in file order; a truncated tail is ignored."""
    for file in recording_files(path):
        for line in _gzip_lines(file):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping an unreadable line in %s", file)
                continue
            frame = record.get("frame")
            if isinstance(frame, dict) and "b64" in frame:
                record["frame"] = base64.b64decode(frame["b64"])
            yield record


# --- replay ----------------------------------------------------------------------

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
        from simulator.alpaca import parse_time_ns

        try:
            return msgpack.Timestamp.from_unix_nano(parse_time_ns(value))
        except ValueError:
            return value
    return value


def _to_text_time(value):
    if isinstance(value, msgpack.Timestamp):
        from simulator.tape import rfc3339_ns

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

    def tick(self, sim, loop_time: float) -> None:
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

    def deliver(self, sim, record: dict) -> None:
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
        from simulator.alpaca import AlpacaSession
        from simulator.server import json_frame, msgpack_frame

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
        from simulator.finnhub import FinnhubSession

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
        from simulator.binance import BinanceSession

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

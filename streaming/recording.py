"""The recording format of received stream frames, written by the stream
worker and read back by the simulator's replay (`simulator.replay`).

Format (written by `start_streams --record FILE` through `FrameRecorder`, read
by `simulate_exchange --replay FILE [--speed N]` through `read_frames`):

- gzip-compressed JSON lines, one line per frame received from a provider:
  `{"t": <receive time, epoch seconds, float>, "provider": "alpaca"|"finnhub"|
  "binance"|..., "url": "<WebSocket URL the frame came from>", "frame": "<raw
  text frame>"}`; binary frames (Alpaca msgpack) as `"frame": {"b64": "..."}`.
- Daily rotation: `FrameRecorder("rec/feed.jsonl.gz")` writes each UTC day's
  frames to `rec/feed.2026-11-22.jsonl.gz` (the date goes before the first
  suffix of the name). `--replay` accepts one such daily file, or the base
  name, which replays every day found, in date order. A file cut short by a
  crash replays up to the last complete line.
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

import orjson

log = logging.getLogger(__name__)


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

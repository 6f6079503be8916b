"""The recording format (`streaming.recording`): daily files, text and binary
frames, a file cut short by a crash. Replay of recordings: tests/simulator."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from streaming.recording import FrameRecorder, daily_path, read_frames

DAY1 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 3, 3, 14, 30, tzinfo=UTC).timestamp()


def test_recorder_rotates_daily_and_round_trips_text_and_binary(tmp_path):
    base = tmp_path / "rec" / "feed.jsonl.gz"
    with FrameRecorder(base) as recorder:
        recorder.write(
            "alpaca", "ws://x/v2/iex", '[{"T":"success","msg":"connected"}]', DAY1
        )
        recorder.write("alpaca", "ws://x/v2/iex", b"\x91\x80", DAY1 + 1)
        recorder.write("binance", "ws://x/ws/btcusdt@trade", '{"e":"trade"}', DAY2)
    assert daily_path(base, "2026-03-02").name == "feed.2026-03-02.jsonl.gz"
    assert sorted(p.name for p in base.parent.iterdir()) == [
        "feed.2026-03-02.jsonl.gz",
        "feed.2026-03-03.jsonl.gz",
    ]
    with gzip.open(daily_path(base, "2026-03-02"), "rt") as handle:
        first = json.loads(handle.readline())
    assert first == {
        "t": DAY1,
        "provider": "alpaca",
        "url": "ws://x/v2/iex",
        "frame": '[{"T":"success","msg":"connected"}]',
    }
    frames = list(read_frames(base))
    assert [f["frame"] for f in frames] == [
        '[{"T":"success","msg":"connected"}]',
        b"\x91\x80",
        '{"e":"trade"}',
    ]
    assert [f["provider"] for f in frames] == ["alpaca", "alpaca", "binance"]
    assert len(list(read_frames(daily_path(base, "2026-03-03")))) == 1


def test_a_recording_cut_short_replays_what_was_written(tmp_path):
    base = tmp_path / "cut.jsonl.gz"
    with FrameRecorder(base, flush_every=1) as recorder:
        for i in range(50):
            recorder.write(
                "finnhub", "ws://x/", json.dumps({"type": "trade", "n": i}), DAY1 + i
            )
    path = daily_path(base, "2026-03-02")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 15])  # lose the gzip trailer and a bit more
    frames = list(read_frames(path))
    assert 0 < len(frames) <= 50
    assert [json.loads(f["frame"])["n"] for f in frames] == list(range(len(frames)))


def test_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_frames(tmp_path / "nothing.jsonl.gz"))

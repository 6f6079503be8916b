"""Provider frame parsers: frames/s and events/s for batched frames.

Each provider's `parse_frame` (decode + normalize into frozen dataclasses with
aware UTC datetimes and Decimals) against peers measured in the same run on
the same frames:
- `json.loads` + dict access (the floor: decoding and touching every field,
  no conversion),
- for Alpaca msgpack frames, alpaca-py's own path (`msgpack.unpackb` +
  `StockDataStream._cast` into its pydantic models), what the official client
  does per received frame.

Times are CPU time of this process (`time.process_time`), so the figures are
per CPU-second and hold up on a shared machine; peers run in the same process
on the same frames. The first Alpaca case draws every price uniformly (few
repeats: the worst case for the parsers' price caches); the random-walk case
moves each instrument's price a cent at a time, as a real feed does.

Run: `python -m bench.bench_parsers`

Over 400 lines: the frame generators for three vendors and the peer parsers
(plain json/orjson, alpaca-py's msgpack path) sit beside the measurement so
every parser sees the same frames in the same run.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgpack
import orjson

REPEATS = 3
TARGET_SECONDS = 0.6  # per measurement


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


def _iso_ns(ts: datetime, ns: int) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}".rstrip("0").rstrip(".") + "Z"


def alpaca_messages(
    rng: random.Random, n_frames: int, per_frame: int = 50
) -> list[list[dict]]:
    symbols = ["AAPL", "MSFT", "NVDA", "AMD", "TSLA", "SPY", "QQQ", "META"]
    base = datetime(2024, 3, 12, 14, 30, tzinfo=UTC)
    frames = []
    trade_id = 52983525029461
    for f in range(n_frames):
        msgs = []
        for m in range(per_frame):
            s = rng.choice(symbols)
            ts = base + timedelta(seconds=f, microseconds=m * 997)
            ns = ts.microsecond * 1000 + rng.randrange(1000)
            t = _iso_ns(ts, ns)
            price = round(100 + rng.random() * 300, 2)
            kind = rng.random()
            if kind < 0.6:
                msgs.append(
                    {
                        "T": "q",
                        "S": s,
                        "bx": "V",
                        "bp": price,
                        "bs": rng.randrange(1, 9),
                        "ax": "Q",
                        "ap": round(price + 0.01, 2),
                        "as": rng.randrange(1, 9),
                        "t": t,
                        "c": ["R"],
                        "z": "C",
                    }
                )
            elif kind < 0.97:
                trade_id += 1
                msgs.append(
                    {
                        "T": "t",
                        "i": trade_id,
                        "S": s,
                        "x": "V",
                        "p": price,
                        "s": rng.randrange(1, 500),
                        "t": t,
                        "c": ["@", "I"],
                        "z": "C",
                    }
                )
            else:
                msgs.append(
                    {
                        "T": "b",
                        "S": s,
                        "o": price,
                        "h": price + 0.5,
                        "l": price - 0.5,
                        "c": price + 0.1,
                        "v": 49378,
                        "n": 461,
                        "vw": price + 0.05,
                        "t": ts.strftime("%Y-%m-%dT%H:%M:00Z"),
                    }
                )
        frames.append(msgs)
    return frames


def random_walk(rng: random.Random, frames: list[list[dict]]) -> list[list[dict]]:
    """The same messages with each symbol's prices moving by a cent at a time."""
    prices: dict[str, float] = {}
    out = []
    for msgs in frames:
        walked = []
        for m in msgs:
            m = dict(m)
            price = round(prices.get(m["S"], 200.0) + rng.choice((-0.01, 0, 0.01)), 2)
            prices[m["S"]] = price
            if m["T"] == "q":
                m["bp"], m["ap"] = price, round(price + 0.01, 2)
            elif m["T"] == "t":
                m["p"] = price
            elif m["T"] == "b":
                m.update(o=price, h=round(price + 0.5, 2), l=round(price - 0.5, 2))
                m["c"] = round(price + 0.1, 2)
            walked.append(m)
        out.append(walked)
    return out


def to_msgpack(frames: list[list[dict]]) -> list[bytes]:
    from marketdata.providers.timeparse import parse_rfc3339

    out = []
    for msgs in frames:
        packed = []
        for m in msgs:
            m = dict(m)
            ts = parse_rfc3339(m["t"])
            frac = m["t"][20:-1] if m["t"][19] == "." else ""
            nanos = int(frac.ljust(9, "0")) if frac else 0
            m["t"] = msgpack.Timestamp(int(ts.timestamp()), nanos)
            packed.append(m)
        out.append(msgpack.packb(packed))
    return out


def finnhub_frames(
    rng: random.Random, n_frames: int, per_frame: int = 50
) -> list[bytes]:
    symbols = ["AAPL", "MSFT", "TSLA", "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    t0 = 1710253800000
    frames = []
    for f in range(n_frames):
        data = []
        for m in range(per_frame):
            s = rng.choice(symbols)
            row = {
                "p": round(100 + rng.random() * 300, 2),
                "s": s,
                "t": t0 + f * 1000 + m,
                "v": rng.randrange(1, 500) if ":" not in s else round(rng.random(), 5),
            }
            if ":" not in s:
                row["c"] = ["1", "12"]
            data.append(row)
        frames.append(orjson.dumps({"data": data, "type": "trade"}))
    return frames


def binance_trade_frames(rng: random.Random, n_frames: int) -> list[bytes]:
    frames = []
    t0 = 1710253800000
    for f in range(n_frames):
        sym = rng.choice(["BTCUSDT", "ETHUSDT"])
        frames.append(
            orjson.dumps(
                {
                    "stream": f"{sym.lower()}@trade",
                    "data": {
                        "e": "trade",
                        "E": t0 + f,
                        "s": sym,
                        "t": 3447222699 + f,
                        "p": f"{60000 + rng.random() * 100:.8f}",
                        "q": f"{rng.random():.8f}",
                        "T": t0 + f - 1,
                        "m": rng.random() < 0.5,
                        "M": True,
                    },
                }
            )
        )
    return frames


def binance_kline_frames(rng: random.Random, n_frames: int) -> list[bytes]:
    frames = []
    t0 = 1710253800000
    for f in range(n_frames):
        o = 60000 + rng.random() * 100
        frames.append(
            orjson.dumps(
                {
                    "stream": "btcusdt@kline_1m",
                    "data": {
                        "e": "kline",
                        "E": t0 + f * 2000,
                        "s": "BTCUSDT",
                        "k": {
                            "t": t0,
                            "T": t0 + 59999,
                            "s": "BTCUSDT",
                            "i": "1m",
                            "f": 1,
                            "L": 100,
                            "o": f"{o:.8f}",
                            "c": f"{o + 1:.8f}",
                            "h": f"{o + 2:.8f}",
                            "l": f"{o - 1:.8f}",
                            "v": "12.50000000",
                            "n": 101,
                            "x": f % 30 == 29,
                            "q": "750000.00000000",
                            "V": "6.0",
                            "Q": "360000.0",
                            "B": "0",
                        },
                    },
                }
            )
        )
    return frames


# --- peers -------------------------------------------------------------------


def plain_alpaca(frame: bytes) -> int:
    n = 0
    for m in json.loads(frame):
        kind = m["T"]
        if kind == "q":
            (m["S"], m["t"], m["bp"], m["bs"], m["ap"], m["as"])
        elif kind == "t":
            (m["S"], m["t"], m["p"], m["s"], m["i"])
        elif kind == "b":
            (m["S"], m["t"], m["o"], m["h"], m["l"], m["c"], m["v"])
        n += 1
    return n


def plain_finnhub(frame: bytes) -> int:
    data = json.loads(frame)["data"]
    for row in data:
        (row["s"], row["t"], row["p"], row["v"], row.get("c"))
    return len(data)


def plain_binance(frame: bytes) -> int:
    p = json.loads(frame)["data"]
    if p["e"] == "kline":
        k = p["k"]
        (k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["x"])
    else:
        (p["s"], p["T"], p["p"], p["q"], p["t"])
    return 1


def alpaca_py_msgpack() -> Callable[[bytes], int]:
    from alpaca.data.live.stock import StockDataStream

    stream = StockDataStream("bench-key", "bench-secret")

    def run(frame: bytes) -> int:
        msgs = msgpack.unpackb(frame)
        for m in msgs:
            stream._cast(m)
        return len(msgs)

    return run


# --- measurement ---------------------------------------------------------------


def measure(func: Callable[[bytes], int], frames: list) -> tuple[float, float]:
    """Best-of-REPEATS (frames, events) per CPU-second."""
    clock = time.process_time
    count = 0
    started = clock()
    while clock() - started < 0.05:  # calibrate
        func(frames[count % len(frames)])
        count += 1
    per_frame = (clock() - started) / count
    n = max(len(frames), int(TARGET_SECONDS / per_frame))
    best = (0.0, 0.0)
    for _ in range(REPEATS):
        events = 0
        t0 = clock()
        for i in range(n):
            events += func(frames[i % len(frames)])
        elapsed = clock() - t0
        if n / elapsed > best[0]:
            best = (n / elapsed, events / elapsed)
    return best


def main() -> None:
    _setup_django()
    from marketdata.providers.alpaca import AlpacaProvider
    from marketdata.providers.binance import BinanceProvider
    from marketdata.providers.finnhub import FinnhubProvider

    rng = random.Random(7)
    alpaca = AlpacaProvider(key_id="k", secret="s")
    finnhub = FinnhubProvider(token="t", symbols={"BTC/USD": "BINANCE:BTCUSDT"})
    binance = BinanceProvider(symbols={"BTC/USD": "BTCUSDT", "ETH/USD": "ETHUSDT"})

    alpaca_msgs = alpaca_messages(rng, 200)
    alpaca_json = [orjson.dumps(m) for m in alpaca_msgs]
    alpaca_mp = to_msgpack(alpaca_msgs)
    alpaca_walk = [orjson.dumps(m) for m in random_walk(random.Random(11), alpaca_msgs)]
    fh = finnhub_frames(rng, 200)
    bt = binance_trade_frames(rng, 2000)
    bk = binance_kline_frames(rng, 2000)

    def ours(provider) -> Callable[[bytes], int]:
        return lambda frame: len(provider.parse_frame(frame))

    # sanity: nothing in the bench frames is malformed
    for provider, frames in (
        (alpaca, alpaca_json),
        (alpaca, alpaca_walk),
        (alpaca, alpaca_mp),
        (finnhub, fh),
        (binance, bt),
        (binance, bk),
    ):
        for frame in frames[:20]:
            assert all(
                getattr(e, "type", None) is None for e in provider.parse_frame(frame)
            )

    cases = [
        (
            "alpaca JSON, 50 msgs/frame",
            ours(alpaca),
            alpaca_json,
            "json.loads+dict",
            plain_alpaca,
        ),
        (
            "alpaca JSON, random-walk prices",
            ours(alpaca),
            alpaca_walk,
            "json.loads+dict",
            plain_alpaca,
        ),
        (
            "alpaca msgpack, 50 msgs/frame",
            ours(alpaca),
            alpaca_mp,
            "alpaca-py unpack+_cast",
            alpaca_py_msgpack(),
        ),
        (
            "finnhub trades, 50/frame",
            ours(finnhub),
            fh,
            "json.loads+dict",
            plain_finnhub,
        ),
        ("binance combined trade", ours(binance), bt, "json.loads+dict", plain_binance),
        (
            "binance combined kline_1m",
            ours(binance),
            bk,
            "json.loads+dict",
            plain_binance,
        ),
    ]
    header = (
        f"{'frames (per CPU-second)':32} {'frames/s':>10} {'events/s':>11} "
        f"{'µs/frame':>9}   {'peer':24} {'peer ev/s':>11} {'ours/peer':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, func, frames, peer_name, peer in cases:
        fps, eps = measure(func, frames)
        _, peer_eps = measure(peer, frames)
        print(
            f"{label:32} {fps:10,.0f} {eps:11,.0f} {1e6 / fps:9.1f}   "
            f"{peer_name:24} {peer_eps:11,.0f} {eps / peer_eps:9.2f}"
        )


if __name__ == "__main__":
    main()

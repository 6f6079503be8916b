from __future__ import annotations

import random
import zlib

import pytest

from streaming.backoff import Backoff
from streaming.shard import Shard, shard_of


def test_shards_split_every_symbol_exactly_once():
    symbols = [f"SYM{i}" for i in range(500)] + ["BTC/USD", "BRK.B", "BF-B"]
    for count in (1, 2, 3, 7):
        owners = {
            s: [i for i in range(count) if Shard(i, count).owns(s)] for s in symbols
        }
        assert all(len(o) == 1 for o in owners.values())
        if count > 1:  # every shard gets a share
            assert {o[0] for o in owners.values()} == set(range(count))


def test_shard_assignment_is_stable_across_processes():
    # crc32, not hash(): the same on every machine and Python run
    assert [shard_of(s, 3) for s in ("AAPL", "MSFT", "BTC/USD")] == [
        zlib.crc32(s.encode()) % 3 for s in ("AAPL", "MSFT", "BTC/USD")
    ]


@pytest.mark.parametrize("text", ["1/1", "3/2", "x/2", "1", "-1/2", "0/0"])
def test_invalid_shard_is_a_clear_error(text):
    with pytest.raises(ValueError, match="I/N|0 <= I < N"):
        Shard.parse(text)


def test_shard_parse():
    assert Shard.parse("1/3") == Shard(1, 3)
    assert Shard.parse(None) == Shard(0, 1)
    assert str(Shard.parse("2/5")) == "2/5"


def test_backoff_doubles_to_cap_with_full_jitter_and_resets():
    backoff = Backoff(base=1, cap=60, reset_after=30, rng=random.Random(1))
    ceilings = []
    for _ in range(9):
        ceilings.append(backoff.ceiling())
        delay = backoff.next_delay()
        assert 0 <= delay <= ceilings[-1]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.healthy_for(5)  # a short session keeps backing off
    assert backoff.ceiling() == 60
    backoff.healthy_for(31)
    assert backoff.ceiling() == 1


def test_backoff_delays_are_spread_out():
    backoff = Backoff(base=1, cap=60, rng=random.Random(7))
    delays = []
    for _ in range(200):
        backoff.attempts = 6
        delays.append(backoff.next_delay())
    assert min(delays) < 10 and max(delays) > 50  # full jitter, not "cap ± a bit"

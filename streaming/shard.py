"""`--shard I/N`: which stream worker owns which instrument.

Ownership is `crc32(symbol) % N == I`: stable across processes, Python
versions and restarts (unlike `hash()`), so N workers started with 0/N … N-1/N
cover every instrument exactly once.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"Invalid shard {self.index}/{self.count}: need 0 <= I < N and N >= 1"
            )

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """Parse `"I/N"` (e.g. `"0/3"`); None or empty means the only shard."""
        if not text:
            return cls()
        index, sep, count = text.partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError:
            raise ValueError(
                f"Invalid shard {text!r}: expected I/N such as 0/2 (0 <= I < N)"
            ) from None

    def owns(self, symbol: str) -> bool:
        return self.count == 1 or shard_of(symbol, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(symbol: str, count: int) -> int:
    return zlib.crc32(symbol.encode("utf-8")) % count

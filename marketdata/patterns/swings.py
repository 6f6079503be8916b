"""Swing points: a zigzag over highs and lows with a reversal threshold in ATR
multiples.

Rule, bar by bar (i = the bar that just closed, thr = ZIGZAG_ATR × ATR(14)[i]):

- Before the first swing, the highest high and lowest low since ATR began are
  tracked; once they are thr apart, the older of the two is the first swing.
- Moving up with a candidate high H: a higher high replaces H; otherwise a low
  at least thr below H confirms H as a swing high (confirmed at bar i) and the
  bar's low becomes the candidate low. Moving down is the mirror image.
- A bar that makes a new extreme never also confirms a reversal (which came
  first inside the bar is unknown).

Each swing therefore carries two bars: `index` (where the extreme is) and
`confirmed` (where the reversal became known). Everything downstream uses a
swing only from its `confirmed` bar on, so swings never look ahead.
"""

from __future__ import annotations

import math

import numpy as np

from marketdata.patterns.base import Swing

ZIGZAG_ATR = 2.0
"""Reversal threshold: a move against the current leg of at least this many
ATR(14), measured from the leg's extreme, makes that extreme a swing."""

ATR_PERIOD = 14
"""ATR period (Wilder) for the zigzag threshold and the patterns' unit."""


def zigzag(high: np.ndarray, low: np.ndarray, atr: np.ndarray) -> list[Swing]:
    """Alternating swing highs and lows, oldest first (see the module doc)."""
    highs, lows, units = high.tolist(), low.tolist(), atr.tolist()
    n = len(highs)
    start = next((i for i in range(n) if units[i] > 0), n)  # NaN > 0 is False
    swings: list[Swing] = []
    if start >= n:
        return swings
    top = bottom = start  # before the first swing
    mode = 0  # 1 = leg up (tracking a high), -1 = leg down (tracking a low)
    ext = start
    for i in range(start, n):
        thr = ZIGZAG_ATR * units[i]
        if math.isnan(thr):
            continue
        if mode == 1:
            if highs[i] > highs[ext]:
                ext = i
            elif highs[ext] - lows[i] >= thr:
                swings.append(Swing(ext, highs[ext], "high", i))
                mode, ext = -1, i
        elif mode == -1:
            if lows[i] < lows[ext]:
                ext = i
            elif highs[i] - lows[ext] >= thr:
                swings.append(Swing(ext, lows[ext], "low", i))
                mode, ext = 1, i
        else:
            if highs[i] > highs[top]:
                top = i
            if lows[i] < lows[bottom]:
                bottom = i
            if highs[top] - lows[bottom] >= thr and top != bottom:
                if bottom < top:
                    swings.append(Swing(bottom, lows[bottom], "low", i))
                    mode, ext = 1, top
                else:
                    swings.append(Swing(top, highs[top], "high", i))
                    mode, ext = -1, bottom
    return swings

"""Who used the machine's cores over a bench's window: CPU time per role
(a process with its threads, or every process of one program, such as a
browser's), as a share of one core. On a 2-core machine the bench's own
clients and feed share the cores with the server, and a latency figure is
read beside this."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _cpu(pid: int) -> float:
    """`cpu_seconds`, 0 once the process has gone."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def pids_running(program: str) -> list[int]:
    """Processes whose command line names `program` (a browser's many)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if program.encode() in command.split(b"\0", 1)[0]:
                found.append(int(entry))
    return found


class CpuShares:
    """`begin()` and `end()` around a window; `line()` reports each role's
    share of one core over it. `roles` maps a name to a function listing its
    pids, called at both ends: a process started inside the window counts
    from its start, one that ended inside it is left out."""

    def __init__(self, roles: dict[str, Callable[[], list[int]]]) -> None:
        self.roles = roles
        self._start: tuple[float, dict] = (0.0, {})
        self.shares: dict[str, float] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        return {
            name: {pid: _cpu(pid) for pid in role()}
            for name, role in self.roles.items()
        }

    def begin(self) -> None:
        self._start = (time.monotonic(), self._read())

    def end(self) -> None:
        began, before = self._start
        after, seconds = self._read(), time.monotonic() - began
        self.shares = {
            name: sum(cpu - before[name].get(pid, 0.0) for pid, cpu in now.items())
            / seconds
            for name, now in after.items()
        }

    def line(self) -> str:
        parts = ", ".join(f"{name} {100 * v:.0f}" for name, v in self.shares.items())
        total = 100 * sum(self.shares.values())
        cores = os.cpu_count() or 1
        return f"CPU over the window, % of one core: {parts} (in all {total:.0f} of {100 * cores})"

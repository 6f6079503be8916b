"""`make bench`: run every bench/bench_*.py script in turn and print its figures.

Each script is standalone (`python -m bench.bench_x`), prints its own table, and
compares against a peer measured in the same run. Pass names to run a subset:
`python -m bench parsers storage`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.stem for name in argv)]
    failed = []
    for script in scripts:
        module = f"bench.{script.stem}"
        print(f"\n=== {module} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", module], cwd=HERE.parent)
        print(
            f"--- {module}: exit {result.returncode} in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        if result.returncode:
            failed.append(module)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

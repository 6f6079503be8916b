"""What auditing costs a user-facing save: `watchlist_rename` (one short
transaction, as the dashboard runs it) with the audit receivers connected and
with them disconnected, alternating in one run.

    python -m bench.bench_audit [--n 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._django import setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save, pre_save

    from audit.receivers import _post_save, _pre_save
    from marketdata.models import Watchlist
    from marketdata.services import watchlist_create, watchlist_rename

    user, _ = get_user_model().objects.get_or_create(username="bench-audit")
    watchlist = Watchlist.objects.filter(owner=user).first() or watchlist_create(
        owner=user, name="bench"
    )
    label = "marketdata.Watchlist"

    def run(n: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            watchlist_rename(owner=user, watchlist_id=watchlist.pk, name=f"b{i}")
        return (time.perf_counter() - started) / n * 1e3

    def audited(on: bool) -> None:
        if on:
            pre_save.connect(
                _pre_save, sender=Watchlist, dispatch_uid=f"audit.pre_save.{label}"
            )
            post_save.connect(
                _post_save, sender=Watchlist, dispatch_uid=f"audit.post_save.{label}"
            )
        else:
            pre_save.disconnect(
                sender=Watchlist, dispatch_uid=f"audit.pre_save.{label}"
            )
            post_save.disconnect(
                sender=Watchlist, dispatch_uid=f"audit.post_save.{label}"
            )

    run(50)
    ratios = []
    print(f"{'round':>5} {'audited ms':>11} {'plain ms':>9} {'ratio':>6}")
    for r in range(args.rounds):
        audited(True)
        on = run(args.n)
        audited(False)
        off = run(args.n)
        audited(True)
        ratios.append(on / off)
        print(f"{r + 1:>5} {on:>11.2f} {off:>9.2f} {on / off:>6.2f}")
    print(f"median ratio audited/plain: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

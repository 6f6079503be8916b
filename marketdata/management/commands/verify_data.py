"""`manage.py verify_data`: compare stored minutes with the market calendar.

    manage.py verify_data                         # every watchlist instrument
    manage.py verify_data --symbols AAPL,BTC/USD --start 2024-01-01 --end 2025-01-01
    manage.py verify_data --json                  # for machines
    manage.py verify_data --record-gaps --min-gap 5 [--repair]

Exit status 1 when any instrument has violations, duplicates or gaps.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.gaps import gap_report
from marketdata.models import Instrument
from marketdata.selectors import instruments_in_use
from marketdata.verify import verify_instrument


def _day(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from None
    return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


class Command(BaseCommand):
    help = "Verify stored 1-minute bars: coverage, gaps, OHLC violations, duplicates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--symbols", help="Comma-separated (default: watchlist instruments)."
        )
        parser.add_argument("--start", help="YYYY-MM-DD (default: first stored bar).")
        parser.add_argument(
            "--end", help="YYYY-MM-DD, exclusive (default: last stored bar)."
        )
        parser.add_argument(
            "--json", action="store_true", help="Machine-readable output."
        )
        parser.add_argument(
            "--largest", type=int, default=5, help="Largest gaps to list."
        )
        parser.add_argument(
            "--record-gaps",
            action="store_true",
            help="Record the gaps found in the gap ledger (add --repair to "
            "backfill them at once).",
        )
        parser.add_argument(
            "--min-gap",
            type=int,
            default=5,
            help="Minutes a gap must miss to be recorded.",
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="With --record-gaps: enqueue their backfills now. Without it the "
            "gaps are only recorded; a running rundramatiq worker's reclaimer "
            "sends recorded open gaps within a few minutes.",
        )

    def handle(self, *args, **options) -> None:
        start, end = _day(options["start"]), _day(options["end"])
        if start and end and end <= start:
            raise CommandError("--end must be after --start.")
        if options["symbols"]:
            wanted = [
                s.strip().upper() for s in options["symbols"].split(",") if s.strip()
            ]
            found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=wanted)}
            missing = [s for s in wanted if s not in found]
            if missing:
                raise CommandError(f"Unknown instrument(s): {', '.join(missing)}")
            instruments = [found[s] for s in wanted]
        else:
            instruments = list(instruments_in_use().order_by("symbol"))
        reports = []
        recorded = 0
        for instrument in instruments:
            largest = 10**9 if options["record_gaps"] else options["largest"]
            report = verify_instrument(
                instrument=instrument, start=start, end=end, largest=largest
            )
            if options["record_gaps"]:
                for gap in report.gaps:
                    if gap.missing >= options["min_gap"]:
                        gap_report(
                            instrument=instrument,
                            start=gap.start,
                            end=gap.end,
                            source="verifier",
                            repair=options["repair"],
                        )
                        recorded += 1
                report.gaps = report.gaps[: options["largest"]]
            reports.append(report)

        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "instruments": [r.as_dict() for r in reports],
                        "gaps_recorded": recorded,
                    },
                    indent=2,
                )
            )
        else:
            self._table(reports)
            if options["record_gaps"]:
                self.stdout.write(f"{recorded} gap(s) recorded in the gap ledger.")
        if any(not r.clean for r in reports):
            raise SystemExit(1)

    def _table(self, reports) -> None:
        header = (
            f"{'symbol':<10} {'bars':>10} {'first':>17} {'last':>17} {'days':>5} "
            f"{'expected':>10} {'in session':>10} {'coverage':>9} {'gaps':>5} "
            f"{'violations':>10} {'dupes':>5}"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in reports:
            first = f"{r.first:%Y-%m-%d %H:%M}" if r.first else "—"
            last = f"{r.last:%Y-%m-%d %H:%M}" if r.last else "—"
            self.stdout.write(
                f"{r.symbol:<10} {r.bars:>10,} {first:>17} {last:>17} {r.trading_days:>5} "
                f"{r.expected_minutes:>10,} {r.session_minutes:>10,} {r.coverage:>8.2f}% "
                f"{r.gap_count:>5} {r.violations:>10} {r.duplicates:>5}"
            )
        for r in reports:
            if r.gaps:
                self.stdout.write(
                    f"\n{r.symbol}: largest gaps ({r.missing_minutes:,} minutes missing in all)"
                )
                for g in r.gaps:
                    self.stdout.write(
                        f"  {g.start:%Y-%m-%d %H:%M} → {g.end:%Y-%m-%d %H:%M} UTC  {g.missing:,} min"
                    )
            if r.violation_examples:
                self.stdout.write(
                    f"\n{r.symbol}: {r.violations} OHLC violation(s), e.g."
                )
                for v in r.violation_examples:
                    self.stdout.write(
                        f"  {v['ts']}  o {v['open']} h {v['high']} l {v['low']} c {v['close']} v {v['volume']}"
                    )
            if r.outside_session:
                self.stdout.write(
                    f"\n{r.symbol}: {r.outside_session:,} bar(s) outside the "
                    f"{'extended' if r.extended else 'regular'} sessions"
                )

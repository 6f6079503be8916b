"""`manage.py simulate_exchange`: the built-in exchange simulator.

Serves the Alpaca, Finnhub and Binance stream and REST paths on one loopback
port (see `simulator`), or replays a recorded session (`--replay`).
`--symbol-cap alpaca=30,finnhub=50` enforces plan symbol caps per connection
(off by default; Binance always caps at 1,024 streams unless told otherwise).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulator.faults import Faults, parse_caps
from simulator.prices import HOURS_CHOICES
from simulator.replay import Replayer
from simulator.server import Simulator


def _caps(value: str) -> dict[str, int | None]:
    import argparse

    try:
        return parse_caps(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be between 0 and 1")
    return number


class Command(BaseCommand):
    help = (
        "Run the loopback exchange simulator (Alpaca, Finnhub and Binance protocols)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SIMULATOR_HOST)
        parser.add_argument("--port", type=int, default=settings.SIMULATOR_PORT)
        parser.add_argument("--seed", type=int, default=settings.SIMULATOR_SEED)
        parser.add_argument(
            "--rate",
            type=float,
            default=2.0,
            help="messages per second per symbol (trades + quotes)",
        )
        parser.add_argument("--hours", choices=HOURS_CHOICES, default="always")
        parser.add_argument(
            "--clock-speed",
            type=float,
            default=1.0,
            help="simulated seconds per real second (60 = a minute bar every second)",
        )
        parser.add_argument(
            "--clock-start",
            help="simulated time to start at (ISO 8601, UTC if no offset)",
        )
        parser.add_argument(
            "--drop-every", type=float, help="drop connections every N s"
        )
        parser.add_argument("--malformed-rate", type=_fraction, default=0.0)
        parser.add_argument("--stall", action="store_true")
        parser.add_argument("--reject-auth", action="store_true")
        parser.add_argument("--rest-429-rate", type=_fraction, default=0.0)
        parser.add_argument("--rest-500-rate", type=_fraction, default=0.0)
        parser.add_argument("--connection-limit", action="store_true")
        parser.add_argument(
            "--symbol-cap",
            type=_caps,
            action="append",
            default=[],
            metavar="PROTOCOL=N[,...]",
            help="per-connection symbol cap, e.g. alpaca=30,finnhub=50 "
            "(Alpaca: trades+quotes symbols; Finnhub: symbols; Binance: streams)",
        )
        parser.add_argument("--replay", metavar="FILE", help="serve a recorded session")
        parser.add_argument("--speed", type=float, default=1.0, help="replay speed")

    def handle(self, *args, **options):
        faults = Faults(
            drop_every=options["drop_every"],
            malformed_rate=options["malformed_rate"],
            stall=options["stall"],
            reject_auth=options["reject_auth"],
            rest_429_rate=options["rest_429_rate"],
            rest_500_rate=options["rest_500_rate"],
            connection_limit=options["connection_limit"],
        )
        for caps in options["symbol_cap"]:
            faults.update(symbol_caps=caps)
        start = None
        if options["clock_start"]:
            try:
                start = datetime.fromisoformat(
                    options["clock_start"].replace("Z", "+00:00")
                )
            except ValueError as exc:
                raise CommandError(f"--clock-start: {exc}") from exc
            if start.tzinfo is None:
                from datetime import UTC

                start = start.replace(tzinfo=UTC)
        try:
            replayer = (
                Replayer(options["replay"], speed=options["speed"])
                if options["replay"]
                else None
            )
            simulator = Simulator(
                host=options["host"],
                port=options["port"],
                seed=options["seed"],
                rate=options["rate"],
                hours=options["hours"],
                faults=faults,
                clock_speed=options["clock_speed"],
                clock_start=start,
                replayer=replayer,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc

        def ready(sim: Simulator) -> None:
            mode = (
                f"replaying {options['replay']}" if options["replay"] else "simulating"
            )
            caps = sim.faults.symbol_caps
            capped = (
                ", symbol caps "
                + ", ".join(f"{p}={n}" for p, n in sorted(caps.items()))
                if caps
                else ""
            )
            self.stdout.write(
                f"Exchange simulator {mode} on {sim.http_url} "
                f"(seed {sim.seed}, hours {sim.hours}, rate {sim.rate}/s per symbol"
                f"{capped})",
            )
            self.stdout.flush()

        try:
            simulator.run_forever(on_ready=ready)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc

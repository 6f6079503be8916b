"""`manage.py start_streams`: run the stream worker (see streaming.worker)."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.providers import PROVIDERS
from streaming.shard import Shard
from streaming.worker import StreamWorker, WorkerOptions

# The worker's timing options (fields of WorkerOptions), with their help.
TIMINGS = {
    "publish_hz": "Updates per second per instrument (settings.STREAM_PUBLISH_HZ).",
    "stale_after": "Seconds without data (market open) before an instrument is stale (settings.STREAM_STALE_AFTER).",
    "feed_stale_after": "Seconds a connection may stay silent (market open) before it is reconnected (default: twice --stale-after).",
    "backoff_base": "First reconnect delay, seconds.",
    "backoff_cap": "Longest reconnect delay, seconds.",
    "backoff_reset": "Seconds a connection must stay up before the backoff starts again from the base.",
    "connection_limit_backoff": "Wait after a connection-limit error (Alpaca holds a dropped session ~90 s).",
    "auth_timeout": "Seconds to wait for an authentication answer.",
    "gap_settle": "Seconds after a missed minute ends before its backfill is requested.",
    "failover_after": "Seconds a provider may be unhealthy before its instruments move on (settings.STREAM_FAILOVER_AFTER).",
    "failback_hold": "Seconds a recovered provider must stay healthy before they move back (settings.STREAM_FAILBACK_HOLD).",
}  # fmt: skip


class Command(BaseCommand):
    help = (
        "Stream live market data for every instrument in a watchlist, position or "
        "active alert: publish to the channel layer, keep snapshots, store minute "
        "bars, evaluate alerts, report health. Runs until SIGTERM/SIGINT."
    )

    def add_arguments(self, parser):
        # Defaults live in WorkerOptions (and the STREAM_* settings) and are
        # only shown here: an option left out is not passed.
        parser.add_argument(
            "--provider",
            help="Providers for equities, in failover order, e.g. alpaca,finnhub "
            "(default: settings.TAPELINE_PROVIDERS).",
        )
        parser.add_argument(
            "--crypto-provider",
            help="Providers for crypto, in failover order, e.g. alpaca,binance "
            "(default: settings.TAPELINE_CRYPTO_PROVIDERS, else the equity "
            "providers that stream crypto).",
        )
        parser.add_argument(
            "--shard",
            help="I/N: stream only the instruments with crc32(symbol) %% N == I "
            "(default: every instrument).",
        )
        parser.add_argument(
            "--record",
            metavar="FILE",
            help="Record every raw frame with its receive time (for simulator replay).",
        )
        parser.add_argument(
            "--print-events",
            action="store_true",
            help="Print each normalized event as one JSON line on stdout.",
        )
        parser.add_argument(
            "--json-frames",
            action="store_true",
            help="Ask for JSON text frames even where the provider offers msgpack "
            "(Alpaca); readable recordings, more CPU per event.",
        )
        defaults = WorkerOptions()
        for name, text in TIMINGS.items():
            default = getattr(defaults, name)
            if name != "feed_stale_after":  # it follows --stale-after
                text = f"{text} Default: {default:g}."
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, help=text)

    def handle(self, *args, **options):
        from marketdata.providers import routing

        try:
            shard = Shard.parse(options["shard"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        unknown = routing.unknown_names(
            options["provider"] or settings.TAPELINE_PROVIDERS,
            options["crypto_provider"] or settings.TAPELINE_CRYPTO_PROVIDERS,
        )
        if unknown:
            known = ", ".join(sorted(p for p in PROVIDERS if p != "csv"))
            raise CommandError(
                f"unknown provider(s): {', '.join(unknown)}; known: {known}",
                returncode=2,
            )
        timings = {name: options[name] for name in TIMINGS if options[name] is not None}
        worker = StreamWorker(
            options=WorkerOptions(
                provider=options["provider"],
                crypto_provider=options["crypto_provider"],
                shard=shard,
                record=options["record"],
                print_events=options["print_events"],
                msgpack=not options["json_frames"],
                **timings,
            ),
            stdout=sys.stdout,
        )
        code = worker.run()
        if code:
            sys.exit(code)

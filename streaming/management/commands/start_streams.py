"""`manage.py start_streams`: run the stream worker (see streaming.worker)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from streaming.shard import Shard
from streaming.worker import StreamWorker, WorkerOptions


class Command(BaseCommand):
    help = (
        "Stream live market data for every instrument in a watchlist, position or "
        "active alert: publish to the channel layer, keep snapshots, store minute "
        "bars, evaluate alerts, report health. Runs until SIGTERM/SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--provider",
            help="Provider for equities (default: settings.TAPELINE_PROVIDER).",
        )
        parser.add_argument(
            "--crypto-provider",
            help="Provider for crypto (default: settings.TAPELINE_CRYPTO_PROVIDER, else --provider when it streams crypto).",
        )
        parser.add_argument(
            "--shard",
            default="0/1",
            help="I/N: stream only the instruments with crc32(symbol) %% N == I.",
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
        parser.add_argument(
            "--publish-hz",
            type=float,
            help="Updates per second per instrument (default settings.STREAM_PUBLISH_HZ).",
        )
        parser.add_argument(
            "--stale-after",
            type=float,
            help="Seconds without data (market open) before an instrument is stale.",
        )
        parser.add_argument(
            "--feed-stale-after",
            type=float,
            help="Seconds a connection may stay silent (market open) before it is reconnected.",
        )
        parser.add_argument("--backoff-base", type=float, default=1.0)
        parser.add_argument("--backoff-cap", type=float, default=60.0)
        parser.add_argument(
            "--backoff-reset",
            type=float,
            default=30.0,
            help="Seconds a connection must stay up before the backoff starts again from the base.",
        )
        parser.add_argument(
            "--connection-limit-backoff",
            type=float,
            default=95.0,
            help="Wait after a connection-limit error (Alpaca holds a dropped session ~90 s).",
        )
        parser.add_argument("--auth-timeout", type=float, default=15.0)
        parser.add_argument(
            "--gap-settle",
            type=float,
            default=5.0,
            help="Seconds after a missed minute ends before its backfill is requested.",
        )

    def handle(self, *args, **options):
        try:
            shard = Shard.parse(options["shard"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        from marketdata.providers import provider_class

        for name in (options["provider"], options["crypto_provider"]):
            if name:
                try:
                    provider_class(name)
                except (ValueError, ImportError) as exc:
                    raise CommandError(str(exc)) from exc
        worker = StreamWorker(
            options=WorkerOptions(
                provider=options["provider"],
                crypto_provider=options["crypto_provider"],
                shard=shard,
                record=options["record"],
                print_events=options["print_events"],
                msgpack=not options["json_frames"],
                publish_hz=options["publish_hz"],
                stale_after=options["stale_after"],
                feed_stale_after=options["feed_stale_after"],
                backoff_base=options["backoff_base"],
                backoff_cap=options["backoff_cap"],
                backoff_reset=options["backoff_reset"],
                connection_limit_backoff=options["connection_limit_backoff"],
                auth_timeout=options["auth_timeout"],
                gap_settle=options["gap_settle"],
            ),
            stdout=sys.stdout,
        )
        code = worker.run()
        if code:
            sys.exit(code)

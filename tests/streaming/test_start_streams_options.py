"""`start_streams`'s timing options: their defaults are WorkerOptions' (and
its STREAM_* settings), shown in the help and never passed by the parser."""

from __future__ import annotations

from dataclasses import fields

from streaming.management.commands.start_streams import TIMINGS, Command
from streaming.worker import WorkerOptions


def _parser():
    return Command().create_parser("manage.py", "start_streams")


def _help() -> str:
    return " ".join(_parser().format_help().split())


def test_help_shows_the_workers_defaults_as_configured(settings):
    settings.STREAM_PUBLISH_HZ = 7
    settings.STREAM_FAILBACK_HOLD = 45.5
    text = _help()
    assert "instrument (settings.STREAM_PUBLISH_HZ). Default: 7." in text
    assert "back (settings.STREAM_FAILBACK_HOLD). Default: 45.5." in text
    cap = WorkerOptions().backoff_cap
    assert f"Longest reconnect delay, seconds. Default: {cap:g}." in text
    assert "reconnected (default: twice --stale-" in text


def test_options_left_out_are_not_passed_so_the_worker_decides():
    assert set(TIMINGS) <= {f.name for f in fields(WorkerOptions)}
    options = vars(_parser().parse_args(["--backoff-cap", "5", "--shard", "1/2"]))
    assert options["backoff_cap"] == 5.0 and options["shard"] == "1/2"
    assert all(options[name] is None for name in TIMINGS if name != "backoff_cap")
    assert vars(_parser().parse_args([]))["shard"] is None

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_start_without_secret_key_when_not_debug():
    result = run_manage("check", DEBUG="0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: SECRET_KEY is not set. Set SECRET_KEY in the "
        "environment or .env (or DEBUG=1 for local development only)."
    ]


def test_starts_with_secret_key_when_not_debug():
    result = run_manage(
        "check", DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="tapeline.example"
    )
    assert result.returncode == 0, result.stderr


def test_unreachable_database_gives_one_clear_line_with_masked_password():
    result = run_manage(
        "check_services",
        DEBUG="1",
        DATABASE_URL="postgres://trader:hunter2@127.0.0.1:1/tapeline",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        "PostgreSQL is not reachable at postgres://trader:***@127.0.0.1:1/tapeline"
        in lines[0]
    )
    assert "hunter2" not in result.stderr
    assert "pg_ctlcluster" in lines[0]


def test_unreachable_redis_gives_one_clear_line():
    result = run_manage(
        "check_services",
        DEBUG="1",
        REDIS_URL="redis://:topsecret@127.0.0.1:1/0",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Redis is not reachable at redis://:***@127.0.0.1:1/0" in lines[0]
    assert "topsecret" not in result.stderr


def test_provider_defaults_to_simulator_without_keys():
    result = run_manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.TAPELINE_PROVIDER, settings.ALPACA_STREAM_URL)",
        DEBUG="1",
        ALPACA_API_KEY="",
        FINNHUB_TOKEN="",
        TAPELINE_PROVIDER="",
    )
    assert result.returncode == 0, result.stderr
    # An empty TAPELINE_PROVIDER means "not set": keys decide.
    provider, url = result.stdout.strip().splitlines()[-1].split()
    assert provider == "simulator"
    assert url.startswith("ws://127.0.0.1:")


def test_missing_database_says_how_to_create_it():
    result = run_manage(
        "check_services",
        DEBUG="1",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/tapeline_never_created",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "database is missing" in lines[0]
    assert "manage.py ensure_database" in lines[0]


def test_channel_redis_urls_that_are_not_redis_urls_are_refused_at_start():
    result = run_manage(
        "check",
        DEBUG="1",
        CHANNEL_REDIS_URLS="redis://127.0.0.1:6379/0,127.0.0.1:6380",
    )
    assert result.returncode != 0
    assert "CHANNEL_REDIS_URLS: '127.0.0.1:6380' is not a Redis URL" in result.stderr, (
        result.stderr
    )


def test_channel_redis_urls_spread_the_channel_layer_over_every_server():
    result = run_manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; "
        "print(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'])",
        DEBUG="1",
        CHANNEL_REDIS_URLS="redis://a:6379/0,redis://b:6380/0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['redis://a:6379/0', 'redis://b:6380/0']"

"""Tapeline settings: one module, every deployment difference from the environment.

Values come from environment variables, optionally from a `.env` file beside
`manage.py`. Defaults are safe for local development; production must set
`SECRET_KEY` and `DEBUG=0`.

Over 400 lines on purpose: every setting lives in this one module (one place
to look), each with the comment that says why its default is what it is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from core.namespace import channel_prefix, namespace_resolve

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_or(name: str, default: str) -> str:
    """A string setting where an empty value (`NAME=` in .env) means the default."""
    return env.str(name, default="") or default


DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-tapeline-development-only"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment or .env "
            "(or DEBUG=1 for local development only)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_dramatiq",
    "core",
    "marketdata",
    "streaming",
    "alerts",
    "preferences",
    "portfolio",
    "accounts",
    "dashboard",
    "ninja",  # django-ninja: its Swagger UI files, served locally at /api/docs
    "api",
    "audit",
    # The exchange simulator (`simulate_exchange`): a separate process, here only
    # for its command; nothing in production imports it.
    "simulator",
]

MIDDLEWARE = [
    "core.middleware.UnstorableInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who, from where (dashboard, api, admin) for the audit log: audit.context.
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.live_page",
                "preferences.context_processors.display",
                "core.context_processors.browser",
            ],
        },
    },
]

ASGI_APPLICATION = "core.asgi.application"

# --- Storage -----------------------------------------------------------------
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/tapeline"
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _retention_days(name: str, *, default: int, what: str) -> int:
    """Whole days of `what` to keep, at least 1; 0 keeps everything."""
    raw = env.str(name, default=str(default))
    try:
        days = int(raw.strip() or "0")
    except ValueError:
        days = -1
    if days < 0:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is refused: give whole days of {what} to keep, "
            "at least 1 (0 or unset keeps them all)."
        )
    return days


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_or(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is refused: use one of {', '.join(choices)}."
        )
    return value


# Days of 1-minute bars kept (0 keeps all). Only minutes are deleted, never
# hourly or daily bars or rollups (marketdata.retention, run by the reclaimer
# and `manage.py bars_retention`); a change applies at the next run.
BAR_RETENTION_DAYS = _retention_days(
    "BAR_RETENTION_DAYS", default=0, what="1-minute bars"
)
# TimescaleDB: `auto` uses it when the server offers the extension (2.x),
# `require` refuses to migrate without it, `off` uses plain partitioning.
TIMESCALE = _choice("TIMESCALE", "auto", ("auto", "require", "off"))
# Bulk bar writes: COPY (`on`), multi-row INSERTs (`off`), or `auto`: COPY
# except on servers known to fail on it (marketdata.bar_copy).
BAR_COPY = _choice("BAR_COPY", "auto", ("auto", "on", "off"))
# Compress Timescale chunks older than this many days.
BAR_COMPRESS_AFTER_DAYS = env.int("BAR_COMPRESS_AFTER_DAYS", default=30)

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
_redis_db = (urlsplit(REDIS_URL).path.lstrip("/") or "0").split("/")[0]

# What keeps installations sharing one Redis apart (`core.namespace`): every
# Redis key, the cache, the Dramatiq queues and the channel layer carry it.
# CHANNELS_PREFIX is its older name (tests and benches isolate runs with it).
TAPELINE_NAMESPACE = namespace_resolve(
    explicit=env.str("TAPELINE_NAMESPACE", default=""),
    legacy=env.str("CHANNELS_PREFIX", default=""),
    database=DATABASES["default"].get("NAME") or "",
)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": TAPELINE_NAMESPACE,
    }
}

# The pub/sub layer delivers every group message (the core layer drops them past
# its capacity); core.channel_layer's subclass of it rides out Redis outages.
# Redis pub/sub ignores database numbers, so the prefix carries the namespace
# and the database number.
# CHANNEL_REDIS_URLS (comma-separated) spreads the layer over several Redis
# servers: channels-redis puts each group on one of them by a hash of its name,
# so publishers and subscribers of a group always meet on the same server.
_channel_hosts = env.list("CHANNEL_REDIS_URLS", default=[]) or [REDIS_URL]
for _url in _channel_hosts:
    if urlsplit(_url).scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            f"CHANNEL_REDIS_URLS: {_url!r} is not a Redis URL (redis://host:port/db); "
            "separate several with commas."
        )
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "core.channel_layer.ResilientPubSubChannelLayer",
        "CONFIG": {
            "hosts": _channel_hosts,
            "prefix": channel_prefix(namespace=TAPELINE_NAMESPACE, redis_db=_redis_db),
        },
    }
}

DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker",
    # A killed worker's prefetched messages wait in its own set until another
    # worker's maintenance pass, after `heartbeat_timeout`, puts them back;
    # dramatiq runs that pass on 0.1 % of fetches by default (minutes of
    # idle workers), here on 5 % (seconds), so the jobs of a dead worker
    # resume within about a minute.
    "OPTIONS": {
        "url": REDIS_URL,
        # Queues per installation: otherwise one installation's workers run
        # another's jobs (keys `<namespace>:dramatiq:<queue>`).
        "namespace": f"{TAPELINE_NAMESPACE}:dramatiq",
        "heartbeat_timeout": 60_000,
        "maintenance_chance": 50_000,
    },
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        # Runs RECLAIM_SERVICES in every worker process (core.reclaim).
        "core.reclaim.ReclaimMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Auth --------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:index"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)

# --- Accounts (accounts app) ---------------------------------------------------
# Who may make an account: `closed` (an administrator does, in admin),
# `invite` (whoever holds a single-use invite link staff made) or `open`
# (anyone, active once the email address is confirmed).
TAPELINE_SIGNUP = _choice("TAPELINE_SIGNUP", "closed", ("closed", "invite", "open"))
# Days an invite link stays valid unless its maker says otherwise.
ACCOUNTS_INVITE_DAYS = env.int("ACCOUNTS_INVITE_DAYS", default=7)
# Seconds an email-confirmation link (open sign-up) and a password-reset link
# stay valid.
ACCOUNTS_VERIFY_SECONDS = env.int("ACCOUNTS_VERIFY_SECONDS", default=3 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=2 * 3600)
# Login throttling (accounts.throttle, Redis counters): failures from one IP
# or for one username within LOGIN_FAILURE_WINDOW seconds. From the
# LOGIN_DELAY_AFTER-th on, each failure makes the next attempt wait
# LOGIN_DELAY_SECONDS, doubling (at most a minute); at LOGIN_LOCK_AFTER
# failures for a username (LOGIN_IP_LOCK_AFTER from one address, which may
# be a whole office behind one NAT) log-ins are locked for LOGIN_LOCK_SECONDS.
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=900)
LOGIN_DELAY_AFTER = env.int("LOGIN_DELAY_AFTER", default=3)
LOGIN_DELAY_SECONDS = env.float("LOGIN_DELAY_SECONDS", default=2.0)
LOGIN_LOCK_AFTER = env.int("LOGIN_LOCK_AFTER", default=8)
LOGIN_IP_LOCK_AFTER = env.int("LOGIN_IP_LOCK_AFTER", default=30)
LOGIN_LOCK_SECONDS = env.int("LOGIN_LOCK_SECONDS", default=900)
# Reverse proxies in front of the web process that append to
# X-Forwarded-For: the client address is that many entries from the right.
# 0 (no proxy) uses the socket's address, so a client cannot forge it.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- I18N / static -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves static files from the web process; in development straight
# from the source folders, in production from `collectstatic` output.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Browser test hooks (`window.tapelineMarket`, `window.tapelineChart`, ...,
# static/js/hooks.js): on as `<body data-test-hooks="1">`; the e2e stack sets it.
BROWSER_TEST_HOOKS = env.bool("BROWSER_TEST_HOOKS", default=DEBUG)

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="alerts@tapeline.local")

# --- Market data providers -----------------------------------------------------
ALPACA_API_KEY = env.str("ALPACA_API_KEY", default="")
ALPACA_API_SECRET = env.str("ALPACA_API_SECRET", default="")
ALPACA_FEED = env_or("ALPACA_FEED", "iex")  # iex | sip | delayed_sip | test
FINNHUB_TOKEN = env.str("FINNHUB_TOKEN", default="")

if ALPACA_API_KEY:
    _default_provider = "alpaca"
elif FINNHUB_TOKEN:
    _default_provider = "finnhub"
else:
    _default_provider = "simulator"
# Ordered provider lists per asset class (`marketdata.providers.routing`): the
# first is the primary, the stream worker fails over along the list. The
# single-provider settings are shorthands for one-element lists.
TAPELINE_PROVIDERS = env.list("TAPELINE_PROVIDERS", default=[]) or [
    env_or("TAPELINE_PROVIDER", _default_provider)
]
TAPELINE_PROVIDER = TAPELINE_PROVIDERS[0].strip().lower()
TAPELINE_CRYPTO_PROVIDERS = env.list("TAPELINE_CRYPTO_PROVIDERS", default=[]) or [
    name for name in [env.str("TAPELINE_CRYPTO_PROVIDER", default="")] if name
]
TAPELINE_CRYPTO_PROVIDER = (TAPELINE_CRYPTO_PROVIDERS or [""])[0].strip().lower()

# Symbols each provider's plan lets one stream connection carry (0 = no
# limit). Alpaca's free (IEX) plan streams 30 symbols' trades and quotes, SIP
# plans are unlimited; Finnhub's free plan 50; Binance 1,024 streams per
# connection (`streaming.budget` turns streams into symbols).
_alpaca_default_limit = 30 if ALPACA_FEED in ("iex", "test") else 0
# Failover (`streaming.failover`): seconds a provider may be unhealthy before
# its instruments move to the next of their list, and seconds a recovered
# provider must stay healthy before they move back.
STREAM_FAILOVER_AFTER = env.float("STREAM_FAILOVER_AFTER", default=4.0)
# Seconds a stream worker that stopped reporting (killed, its machine gone)
# stays on the status page, as not alive, before it is forgotten; one that
# stopped cleanly goes after 5 minutes (or this, if shorter).
STREAM_WORKER_FORGET = env.float("STREAM_WORKER_FORGET", default=24 * 3600.0)
STREAM_FAILBACK_HOLD = env.float("STREAM_FAILBACK_HOLD", default=120.0)
# Cross-source check (`streaming.crosscheck`): seconds between rounds, and the
# price difference (percent) against another provider that counts as divergent.
STREAM_CROSSCHECK_EVERY = env.float("STREAM_CROSSCHECK_EVERY", default=60.0)
STREAM_DIVERGENCE_PCT = env.float("STREAM_DIVERGENCE_PCT", default=1.0)
STREAM_SYMBOL_LIMITS = {
    "alpaca": env.int("ALPACA_SYMBOL_LIMIT", default=_alpaca_default_limit),
    "finnhub": env.int("FINNHUB_SYMBOL_LIMIT", default=50),
    "binance": env.int("BINANCE_STREAM_LIMIT", default=1024),
    "simulator": env.int("SIMULATOR_SYMBOL_LIMIT", default=0),
}

# The built-in exchange simulator (`manage.py simulate_exchange`): one loopback
# port serving the Alpaca, Finnhub and Binance paths, and the credentials it
# accepts. These are the simulator's own, not keys of any real account.
SIMULATOR_HOST = env.str("SIMULATOR_HOST", default="127.0.0.1")
SIMULATOR_PORT = env.int("SIMULATOR_PORT", default=8765)
SIMULATOR_SEED = env.int("SIMULATOR_SEED", default=42)
SIMULATOR_KEY_ID = env.str("SIMULATOR_KEY_ID", default="SIMULATOR-KEY")
SIMULATOR_SECRET = env.str("SIMULATOR_SECRET", default="simulator-secret")
SIMULATOR_FINNHUB_TOKEN = env.str("SIMULATOR_FINNHUB_TOKEN", default="simtoken")

_sim_ws = f"ws://{SIMULATOR_HOST}:{SIMULATOR_PORT}"
_sim_http = f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}"
_use_sim = TAPELINE_PROVIDER == "simulator"

# Base URLs. The Alpaca stream appends `/v2/<feed>` or `/v1beta3/crypto/us`.
ALPACA_STREAM_URL = env_or(
    "ALPACA_STREAM_URL",
    _sim_ws if _use_sim else "wss://stream.data.alpaca.markets",
)
ALPACA_DATA_URL = env_or(
    "ALPACA_DATA_URL", _sim_http if _use_sim else "https://data.alpaca.markets"
)
FINNHUB_STREAM_URL = env_or(
    "FINNHUB_STREAM_URL", _sim_ws if _use_sim else "wss://ws.finnhub.io"
)
FINNHUB_API_URL = env_or(
    "FINNHUB_API_URL",
    f"{_sim_http}/api/v1" if _use_sim else "https://finnhub.io/api/v1",
)
BINANCE_STREAM_URL = env_or(
    "BINANCE_STREAM_URL",
    _sim_ws if _use_sim else "wss://data-stream.binance.vision",
)
BINANCE_API_URL = env_or(
    "BINANCE_API_URL", _sim_http if _use_sim else "https://api.binance.com"
)

# History requests per minute toward each provider, shared by every worker.
PROVIDER_RATE_LIMITS = {
    "alpaca": env.int("ALPACA_RATE_LIMIT", default=200),
    "finnhub": env.int("FINNHUB_RATE_LIMIT", default=60),
    "binance": env.int("BINANCE_RATE_LIMIT", default=1200),
    "simulator": env.int("SIMULATOR_RATE_LIMIT", default=60000),
}
# Seconds without progress after which a history chunk (or a gap repair)
# counts as abandoned (its worker died) and is handed out again.
HISTORY_STALE_SECONDS = env.int("HISTORY_STALE_SECONDS", default=180)
# Seconds between two passes of the reclaimer that runs in every Dramatiq
# worker (core.reclaim): each of RECLAIM_SERVICES hands out again the work
# whose worker died or whose message was lost (marketdata.reclaim: history
# chunks, gap repairs; it also closes finished jobs). 0 turns it off.
HISTORY_RECLAIM_EVERY = env.float("HISTORY_RECLAIM_EVERY", default=30.0)
RECLAIM_SERVICES = [
    "marketdata.reclaim.work_reclaim",
    # Alert deliveries (email, webhooks, chats) whose message was lost.
    "alerts.delivery.deliveries_reclaim",
    "alerts.ops_services.ops_alert_emails_reclaim",
    "core.process.process_report",
    # BAR_RETENTION_DAYS: old 1-minute bars deleted in batches.
    "marketdata.retention.bars_retention_reclaim",
    # AUDIT_RETENTION_DAYS: old audit events deleted in batches.
    "audit.retention.audit_retention_reclaim",
]

# --- Alert delivery (alerts.delivery, alerts.transports) -------------------------
# Each fired alert is one Delivery row per channel (email, webhook, Slack,
# Discord, Telegram), sent by the Dramatiq actor `alerts.tasks.delivery_send`.
# Seconds to connect and, separately, to read the answer of an endpoint.
ALERT_DELIVERY_TIMEOUT = env.float("ALERT_DELIVERY_TIMEOUT", default=5.0)
# Attempts per delivery (then `abandoned`); retries wait BACKOFF s doubling
# per attempt up to BACKOFF_MAX s, at least the endpoint's Retry-After.
ALERT_DELIVERY_MAX_ATTEMPTS = env.int("ALERT_DELIVERY_MAX_ATTEMPTS", default=8)
ALERT_DELIVERY_BACKOFF_SECONDS = env.float(
    "ALERT_DELIVERY_BACKOFF_SECONDS", default=2.0
)
ALERT_DELIVERY_BACKOFF_MAX_SECONDS = env.float(
    "ALERT_DELIVERY_BACKOFF_MAX_SECONDS", default=600.0
)
# Deliveries in flight per channel across all workers (alerts.throttle): a
# slow endpoint holds at most this many worker threads. 0: no limit.
ALERT_CHANNEL_CONCURRENCY = env.int("ALERT_CHANNEL_CONCURRENCY", default=2)
# A channel failing this many attempts in a row is disabled and its owner told.
ALERT_CHANNEL_MAX_FAILURES = env.int("ALERT_CHANNEL_MAX_FAILURES", default=10)
# Aggregation: past THRESHOLD alert messages to one channel within WINDOW
# seconds, the next alerts are folded into one digest sent WINDOW s later.
ALERT_DIGEST_THRESHOLD = env.int("ALERT_DIGEST_THRESHOLD", default=5)
ALERT_DIGEST_WINDOW_SECONDS = env.float("ALERT_DIGEST_WINDOW_SECONDS", default=60.0)
# Webhook addresses resolving to loopback, private, link-local or reserved
# addresses are refused (at save and at send) unless this is on.
ALERT_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERT_WEBHOOK_ALLOW_PRIVATE", default=False)
# Telegram Bot API base (tests point it at a local fake).
TELEGRAM_API_BASE = env.str("TELEGRAM_API_BASE", default="https://api.telegram.org")
# Public address of the site, for links in messages ("" leaves them out).
SITE_URL = env.str("SITE_URL", default="")

# --- Audit log (audit app) ------------------------------------------------------
# Days of audit events kept (0 keeps all); older ones are deleted in batches by
# the reclaimer and `manage.py audit_retention`.
AUDIT_RETENTION_DAYS = _retention_days(
    "AUDIT_RETENTION_DAYS", default=365, what="audit events"
)

# --- Streaming and dashboard limits -------------------------------------------
# Updates per second per instrument that reach browsers (coalesced).
STREAM_PUBLISH_HZ = env.int("STREAM_PUBLISH_HZ", default=10)
# Seconds without data, while the market is open, before a feed counts as stale.
STREAM_STALE_AFTER = env.float("STREAM_STALE_AFTER", default=30.0)
# Nothing lost (streaming.ledger): closed minutes per instrument kept in memory
# while storing fails (past it the oldest go to the gap ledger); seconds after a
# minute closes before it must be stored or in the ledger; the sweep's period
# (seconds) and span (hours); fired alerts kept while they cannot be recorded.
STREAM_UNSTORED_MINUTES = env.int("STREAM_UNSTORED_MINUTES", default=240)
STREAM_RECONCILE_SETTLE = env.float("STREAM_RECONCILE_SETTLE", default=10.0)
STREAM_SWEEP_EVERY = env.float("STREAM_SWEEP_EVERY", default=300.0)
STREAM_SWEEP_HOURS = env.float("STREAM_SWEEP_HOURS", default=6.0)
STREAM_ALERTS_KEPT = env.int("STREAM_ALERTS_KEPT", default=10000)
WS_MAX_INSTRUMENTS = env.int("WS_MAX_INSTRUMENTS", default=200)
WS_MAX_MESSAGES_PER_SECOND = env.int("WS_MAX_MESSAGES_PER_SECOND", default=20)
# The longest a client's market updates are conflated (ms) while a web process is
# over its frame budget (streaming.hub); within it they go at once. 0 sends one
# frame per update, the naive design `bench_fanout` compares against.
WS_CONFLATE_MS = env.int("WS_CONFLATE_MS", default=100)

# Bearer token required by `/metrics` when set (Prometheus `authorization`).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Feed monitor (streaming.monitor) and connection health (streaming.health_score).
# Ops alerts are raised once when a condition has held this long (seconds) and
# cleared when it ends: zero quotes / zero bars while a market the connection
# serves is open, more than N reconnects in an hour, disconnected, database
# unreachable. A stats line per connection every STREAM_MONITOR_STATS_EVERY s.
STREAM_MONITOR_NO_QUOTES_AFTER = env.float(
    "STREAM_MONITOR_NO_QUOTES_AFTER", default=60.0
)
STREAM_MONITOR_NO_BARS_AFTER = env.float("STREAM_MONITOR_NO_BARS_AFTER", default=300.0)
STREAM_MONITOR_RECONNECTS_PER_HOUR = env.int(
    "STREAM_MONITOR_RECONNECTS_PER_HOUR", default=10
)
STREAM_MONITOR_DOWN_AFTER = env.float("STREAM_MONITOR_DOWN_AFTER", default=300.0)
STREAM_MONITOR_DB_AFTER = env.float("STREAM_MONITOR_DB_AFTER", default=10.0)
STREAM_MONITOR_STATS_EVERY = env.float("STREAM_MONITOR_STATS_EVERY", default=60.0)
# Connection health: healthy at this score (0-100) or more; the uptime window
# (s); not live this long (s) is unhealthy at once; silent this long (s) while
# open and subscribed is unhealthy without a baseline saying it is usual.
STREAM_HEALTH_THRESHOLD = env.float("STREAM_HEALTH_THRESHOLD", default=60.0)
STREAM_HEALTH_WINDOW = env.float("STREAM_HEALTH_WINDOW", default=600.0)
STREAM_HEALTH_DOWN_GRACE = env.float("STREAM_HEALTH_DOWN_GRACE", default=5.0)
STREAM_HEALTH_SILENT_AFTER = env.float("STREAM_HEALTH_SILENT_AFTER", default=60.0)

# Anomaly detection (README "Anomaly detection"). Suspect ticks
# (streaming.suspect): a trade more than THRESHOLD robust deviations (scaled MAD
# of the last WINDOW trade prices, floored at FLOOR_BP basis points of the
# median and FLOOR_TICKS price increments) from the median is held until
# CONFIRM trades or a quote midpoint agree with it, rejected after MAX_HOLD s.
STREAM_SUSPECT_ENABLED = env.bool("STREAM_SUSPECT_ENABLED", default=True)
STREAM_SUSPECT_WINDOW = env.int("STREAM_SUSPECT_WINDOW", default=50)
STREAM_SUSPECT_THRESHOLD = env.float("STREAM_SUSPECT_THRESHOLD", default=8.0)
STREAM_SUSPECT_FLOOR_BP = env.float("STREAM_SUSPECT_FLOOR_BP", default=5.0)
STREAM_SUSPECT_FLOOR_TICKS = env.float("STREAM_SUSPECT_FLOOR_TICKS", default=2.0)
STREAM_SUSPECT_CONFIRM = env.int("STREAM_SUSPECT_CONFIRM", default=3)
STREAM_SUSPECT_MAX_HOLD = env.float("STREAM_SUSPECT_MAX_HOLD", default=2.0)
# Market anomalies on closed minutes (marketdata.anomalies): robust z of
# 1-minute returns at or past RETURN_Z against the last WINDOW minutes and the
# same minute of day over the last DAYS days; volume and trade-count surges at
# SURGE times the median (and past RETURN_Z on the log scale).
ANOMALY_ENABLED = env.bool("ANOMALY_ENABLED", default=True)
ANOMALY_WINDOW = env.int("ANOMALY_WINDOW", default=120)
ANOMALY_DAYS = env.int("ANOMALY_DAYS", default=20)
ANOMALY_RETURN_Z = env.float("ANOMALY_RETURN_Z", default=6.0)
ANOMALY_SURGE = env.float("ANOMALY_SURGE", default=5.0)
ANOMALY_KEPT = env.int("ANOMALY_KEPT", default=10000)

# --- Token API (api app) -----------------------------------------------------
# Requests each API token may make per window (seconds); past it a 429 with
# Retry-After. 0 turns the limit off. Session (browser) requests are not counted.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=120)
API_RATE_WINDOW = env.int("API_RATE_WINDOW", default=60)

# --- Logging ---------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        # One INFO line per retried message would flood the log during an
        # outage; marketdata.history says why chunks are retried, once a minute.
        "dramatiq.middleware.retries": {"level": "WARNING"},
    },
}

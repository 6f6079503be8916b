"""Instruments, watchlists, positions, bars, the gap ledger and detected
anomalies. Over 400 lines: one model module for the app's tables, each model
small."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from marketdata.validators import validate_symbol

PRICE = {"max_digits": 20, "decimal_places": 8}
QUANTITY = {"max_digits": 28, "decimal_places": 8}


class AssetClass(models.TextChoices):
    EQUITY = "equity", "Equity"
    ETF = "etf", "ETF"
    CRYPTO = "crypto", "Crypto"
    FX = "fx", "FX"


class Instrument(models.Model):
    symbol = models.CharField(
        max_length=15,
        unique=True,
        validators=[validate_symbol],
        help_text="Canonical symbol, e.g. AAPL, BRK.B or BTC/USD.",
    )
    name = models.CharField(max_length=200, blank=True)
    asset_class = models.CharField(
        max_length=10, choices=AssetClass.choices, default=AssetClass.EQUITY
    )
    exchange = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    price_increment = models.DecimalField(**PRICE, default=Decimal("0.01"))
    provider_symbols = models.JSONField(
        default=dict,
        blank=True,
        help_text='Symbol per provider when it differs, e.g. {"binance": "BTCUSDT"}.',
    )
    active = models.BooleanField(default=True)
    # Set by the stream worker when a provider names the symbol as unknown;
    # retried at `stream_error_retry_at` (15 min, doubling, at most daily) and
    # cleared when it streams, or by hand in admin.
    stream_error = models.CharField(max_length=300, blank=True)
    stream_error_at = models.DateTimeField(null=True, blank=True)
    stream_error_retry_at = models.DateTimeField(null=True, blank=True)
    stream_error_retries = models.PositiveSmallIntegerField(default=0)
    # Last time someone looked at it (dashboard or instrument page): ranks
    # watchlist instruments for a provider plan's symbol budget.
    viewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        indexes = [models.Index(fields=["asset_class", "active"])]

    def __str__(self) -> str:
        return self.symbol

    def provider_symbol(self, provider: str) -> str:
        return self.provider_symbols.get(provider) or self.symbol

    @property
    def price_decimals(self) -> int:
        exponent = self.price_increment.normalize().as_tuple().exponent
        return max(0, -int(exponent))


class Watchlist(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists"
    )
    name = models.CharField(max_length=60)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], name="watchlist_unique_name_per_owner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner})"


class WatchlistItem(models.Model):
    watchlist = models.ForeignKey(
        Watchlist, on_delete=models.CASCADE, related_name="items"
    )
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="watchlist_items"
    )
    position = models.PositiveIntegerField(default=0)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["watchlist", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["watchlist", "instrument"],
                name="watchlist_item_unique_instrument",
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument} in {self.watchlist.name}"


class PositionQuerySet(models.QuerySet):
    def open(self) -> PositionQuerySet:
        """Positions still held (a closed one keeps its history at zero)."""
        return self.filter(quantity__gt=0)


class Position(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions"
    )
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="positions"
    )
    # quantity, average_cost and realized_pl are the aggregate of the
    # position's transactions, written only by `portfolio.services` (weighted
    # average cost; see portfolio/ledger.py). Zero quantity is a closed position.
    quantity = models.DecimalField(**QUANTITY, default=Decimal(0))
    average_cost = models.DecimalField(**PRICE, default=Decimal(0))
    realized_pl = models.DecimalField(**QUANTITY, default=Decimal(0))
    opened_at = models.DateTimeField(auto_now_add=True)

    objects = PositionQuerySet.as_manager()

    class Meta:
        ordering = ["owner", "instrument__symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "instrument"], name="position_unique_per_owner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.instrument} @ {self.average_cost}"

    @property
    def cost_basis(self) -> Decimal:
        return self.quantity * self.average_cost

    @property
    def is_open(self) -> bool:
        return self.quantity != 0


class TransactionKind(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"
    FEE = "fee", "Fee"


class Transaction(models.Model):
    """A buy, sell or stand-alone fee of one position, applied in (date, id)
    order. `fee` is the commission of a buy or sell, or the amount of a fee."""

    position = models.ForeignKey(
        Position, on_delete=models.CASCADE, related_name="transactions"
    )
    kind = models.CharField(max_length=4, choices=TransactionKind.choices)
    date = models.DateField()
    quantity = models.DecimalField(**QUANTITY, default=Decimal(0))
    price = models.DecimalField(**PRICE, default=Decimal(0))
    fee = models.DecimalField(**PRICE, default=Decimal(0))
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0, price__gte=0, fee__gte=0),
                name="transaction_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="fee", quantity=0, price=0)
                | models.Q(kind__in=["buy", "sell"], quantity__gt=0),
                name="transaction_quantity_fits_kind",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == TransactionKind.FEE:
            return f"{self.date} fee {self.fee}"
        return f"{self.date} {self.kind} {self.quantity.normalize()} @ {self.price.normalize()}"


class Timeframe(models.TextChoices):
    MINUTE = "1m", "1 minute"
    # Stored hourly bars come from files only (CSV imports); charts use them
    # where no minutes exist (`marketdata.rollups`).
    HOUR = "1h", "1 hour"
    DAY = "1d", "1 day"


class BarOrigin(models.TextChoices):
    LIVE = "live", "Live stream"
    HISTORY = "history", "History load"
    BACKFILL = "backfill", "Gap backfill"
    FILE = "file", "File import"


class Bar(models.Model):
    """One OHLCV bar. The table is created by migration SQL: a TimescaleDB
    hypertable when the extension exists, else range-partitioned by `ts`."""

    pk = models.CompositePrimaryKey("instrument", "timeframe", "ts")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.DO_NOTHING, db_constraint=False
    )
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    ts = models.DateTimeField(help_text="Bar start, UTC.")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**QUANTITY, default=Decimal(0))
    vwap = models.DecimalField(**PRICE, null=True, blank=True)
    trade_count = models.IntegerField(null=True, blank=True)
    provider = models.CharField(max_length=16)
    origin = models.CharField(max_length=8, choices=BarOrigin.choices)
    revision = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a later message corrected this bar."
    )

    class Meta:
        db_table = "marketdata_bar"
        ordering = ["instrument", "timeframe", "ts"]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.ts:%Y-%m-%d %H:%M}"


# --- History loading and the gap ledger -------------------------------------------
class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed (some chunks)"


class ChunkState(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped (already covered)"
    FAILED = "failed", "Failed"


class LoadJob(models.Model):
    """One `load_history` request: a provider, a range and its chunks. `key`
    identifies the same request so that running it again resumes this job."""

    key = models.CharField(max_length=64, db_index=True)
    provider = models.CharField(max_length=16)
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    symbols = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=10, choices=JobState.choices, default=JobState.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"load #{self.pk} {self.provider} {self.timeframe} {self.start:%Y-%m-%d}…{self.end:%Y-%m-%d}"


class LoadChunk(models.Model):
    """One instrument × period of a load job, run by one Dramatiq actor call."""

    job = models.ForeignKey(LoadJob, on_delete=models.CASCADE, related_name="chunks")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="load_chunks"
    )
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(
        max_length=10, choices=ChunkState.choices, default=ChunkState.PENDING
    )
    bars_received = models.PositiveIntegerField(default=0)
    bars_added = models.PositiveIntegerField(default=0)
    invalid_bars = models.PositiveIntegerField(default=0)
    invalid_examples = models.JSONField(default=list, blank=True)
    pages = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Provider data is complete up to here (a chunk reaching "now" is only
    # covered up to the moment it was fetched).
    covered_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "instrument", "start"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "instrument", "start"], name="load_chunk_unique"
            )
        ]
        indexes = [
            models.Index(fields=["instrument", "timeframe", "state", "start"]),
            models.Index(fields=["job", "state"]),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.start:%Y-%m-%d}…{self.end:%Y-%m-%d}"


class GapState(models.TextChoices):
    OPEN = "open", "Open"
    REPAIRING = "repairing", "Repairing"
    REPAIRED = "repaired", "Repaired"
    UNREPAIRABLE = "unrepairable", "Unrepairable (provider has no data)"


class Gap(models.Model):
    """A hole in an instrument's 1-minute bars, [start, end)."""

    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="gaps"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    source = models.CharField(
        max_length=16, help_text="Who found it: stream, verifier, admin, …"
    )
    state = models.CharField(
        max_length=12, choices=GapState.choices, default=GapState.OPEN
    )
    missing_minutes = models.PositiveIntegerField(default=0)
    bars_added = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # When the provider's history for [start, end) was fetched, after the range
    # was over: a repaired gap checked so is not repaired again when the same
    # minutes are reported missing (the provider has no bar for them).
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start"]
        indexes = [models.Index(fields=["instrument", "state", "start"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")),
                name="gap_end_after_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} gap {self.start:%Y-%m-%d %H:%M}…{self.end:%H:%M} ({self.state})"


class BarRollup(models.Model):
    """Stored hourly and daily bars computed from minutes (`marketdata.rollups`).
    Written only by `rollups_refresh` with SQL; the model exists so that the
    table is known to Django (admin, test flushes)."""

    pk = models.CompositePrimaryKey("instrument", "timeframe", "ts")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.DO_NOTHING, db_constraint=False
    )
    timeframe = models.CharField(max_length=3)
    ts = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**QUANTITY)
    trade_count = models.BigIntegerField(null=True)
    minutes = models.IntegerField()

    class Meta:
        db_table = "marketdata_bar_rollup"
        ordering = ["instrument", "timeframe", "ts"]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.ts:%Y-%m-%d %H:%M}"


class AnomalyKind(models.TextChoices):
    """The kinds of `marketdata.anomalies.ANOMALY_KINDS`."""

    RETURN_SPIKE = "return_spike", "Return spike"
    VOLUME_SURGE = "volume_surge", "Volume surge"
    TRADE_RATE_SURGE = "trade_rate_surge", "Trade-rate surge"


class Anomaly(models.Model):
    """A market anomaly of one instrument in one minute
    (`marketdata.anomalies`): at most one per (instrument, kind, minute), so
    a replay or a restart never records it twice."""

    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="anomalies"
    )
    kind = models.CharField(max_length=16, choices=AnomalyKind.choices)
    ts = models.DateTimeField(help_text="The minute (bar start, UTC).")
    score = models.FloatField(help_text="Robust z-score, or multiple for surges.")
    value = models.FloatField(help_text="The return, volume or trade count.")
    baseline = models.FloatField(help_text="The median it was compared with.")
    direction = models.CharField(max_length=4, blank=True)
    explain = models.CharField(max_length=300)
    detected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ts", "instrument_id", "kind"]
        indexes = [models.Index(fields=["ts"]), models.Index(fields=["kind", "ts"])]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "kind", "ts"], name="anomaly_once_per_minute"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.kind} {self.ts:%Y-%m-%d %H:%M}"

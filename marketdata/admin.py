from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.db import models
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from audit.services import audit_queryset_update
from core.storable import StorableJSONField
from marketdata.models import (
    BarOrigin,
    Instrument,
    Timeframe,
    Watchlist,
    WatchlistItem,
)
from marketdata.selectors import bars_page
from marketdata.services import instrument_stream_error_clear

BARS_PER_PAGE = 100


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = (
        "symbol",
        "name",
        "asset_class",
        "exchange",
        "currency",
        "price_increment",
        "active",
        "stream_error",
        "bars_link",
    )
    list_filter = ("asset_class", "exchange", "active")
    search_fields = ("symbol", "name")
    actions = ("activate", "deactivate", "clear_stream_error")
    readonly_fields = (
        "stream_error",
        "stream_error_at",
        "stream_error_retry_at",
        "stream_error_retries",
        "viewed_at",
        "created_at",
        "updated_at",
    )
    list_per_page = 100
    # jsonb cannot hold "\u0000" or a lone surrogate: a form error, not a 500.
    formfield_overrides = {models.JSONField: {"form_class": StorableJSONField}}

    @admin.display(description="Bars")
    def bars_link(self, obj: Instrument) -> str:
        url = reverse("admin:marketdata_bars")
        return format_html('<a href="{}?symbol={}">browse</a>', url, obj.symbol)

    @admin.action(description="Activate selected instruments")
    def activate(self, request, queryset):
        count = audit_queryset_update(queryset=queryset, values={"active": True})
        self.message_user(request, f"{count} instruments activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected instruments")
    def deactivate(self, request, queryset):
        count = audit_queryset_update(queryset=queryset, values={"active": False})
        self.message_user(
            request, f"{count} instruments deactivated.", messages.SUCCESS
        )

    @admin.action(description="Clear stream errors (stream them again now)")
    def clear_stream_error(self, request, queryset):
        symbols = list(queryset.values_list("symbol", flat=True))
        count = instrument_stream_error_clear(symbols=symbols)
        self.message_user(
            request,
            f"{count} instruments cleared; the stream worker subscribes them "
            "within a few seconds.",
            messages.SUCCESS,
        )

    def get_urls(self):
        bars = path(
            "bars/", self.admin_site.admin_view(self.bars_view), name="marketdata_bars"
        )
        return [bars, *super().get_urls()]

    def bars_view(self, request):
        """Read-only bar browser: keyset pages by time, never a full count, so it
        stays fast on tens of millions of rows."""
        params = request.GET
        symbol = params.get("symbol", "").strip().upper()
        timeframe = params.get("timeframe") or Timeframe.MINUTE
        origin = params.get("origin") or ""
        before = (
            parse_datetime(params.get("before", "")) if params.get("before") else None
        )
        error = ""
        rows = []
        instrument = (
            Instrument.objects.filter(symbol=symbol).first() if symbol else None
        )
        if symbol and instrument is None:
            error = f"No instrument {symbol!r}."
        elif instrument is not None:
            rows = bars_page(
                instrument=instrument,
                timeframe=timeframe,
                origin=origin or None,
                before=before,
                limit=BARS_PER_PAGE + 1,
            )
        has_more = len(rows) > BARS_PER_PAGE
        rows = rows[:BARS_PER_PAGE]
        next_before: datetime | None = rows[-1].ts if has_more and rows else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Bars",
            "opts": self.model._meta,
            "symbol": symbol,
            "timeframe": timeframe,
            "origin": origin,
            "timeframes": Timeframe.choices,
            "origins": BarOrigin.choices,
            "rows": rows,
            "error": error,
            "next_before": next_before.isoformat() if next_before else "",
            "instrument": instrument,
        }
        return TemplateResponse(request, "admin/marketdata/bars.html", context)


class WatchlistItemInline(admin.TabularInline):
    model = WatchlistItem
    autocomplete_fields = ("instrument",)
    extra = 1
    ordering = ("position",)


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "position", "item_count", "created_at")
    list_filter = ("owner",)
    search_fields = ("name", "owner__username")
    autocomplete_fields = ("owner",)
    inlines = (WatchlistItemInline,)

    @admin.display(description="Items")
    def item_count(self, obj: Watchlist) -> int:
        return obj.items.count()


# --- history loads and the gap ledger (issue 5) ------------------------------------
from datetime import UTC, timedelta  # noqa: E402

from django import forms  # noqa: E402
from django.db.models import Count, Q, Sum  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.utils import timezone  # noqa: E402

from marketdata.coverage import monthly_minutes_coverage  # noqa: E402
from marketdata.models import ChunkState, Gap, GapState, LoadChunk, LoadJob  # noqa: E402


class LoadChunkInline(admin.TabularInline):
    model = LoadChunk
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "instrument", "start", "end", "state", "bars_added", "bars_received",
        "invalid_bars", "pages", "attempts", "error",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("instrument__symbol", "start")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LoadJob)
class LoadJobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "provider", "timeframe", "start", "end", "state", "progress",
        "bars", "failed_chunks", "created_at", "finished_at",
    )  # fmt: skip
    list_filter = ("state", "provider", "timeframe")
    readonly_fields = (
        "key", "provider", "timeframe", "start", "end", "symbols", "options",
        "state", "created_at", "finished_at",
    )  # fmt: skip
    inlines = (LoadChunkInline,)
    actions = ("resume",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                chunk_total=Count("chunks"),
                chunk_finished=Count(
                    "chunks",
                    filter=Q(
                        chunks__state__in=[
                            ChunkState.DONE,
                            ChunkState.SKIPPED,
                            ChunkState.FAILED,
                        ]
                    ),
                ),
                chunk_failed=Count("chunks", filter=Q(chunks__state=ChunkState.FAILED)),
                bars_total=Sum("chunks__bars_added"),
            )
        )

    @admin.display(description="Chunks")
    def progress(self, obj) -> str:
        return f"{obj.chunk_finished}/{obj.chunk_total}"

    @admin.display(description="Bars added", ordering="bars_total")
    def bars(self, obj) -> str:
        return f"{obj.bars_total or 0:,}"

    @admin.display(description="Failed")
    def failed_chunks(self, obj) -> int:
        return obj.chunk_failed

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Resume: re-enqueue failed and abandoned chunks")
    def resume(self, request, queryset):
        from marketdata.history import load_job_enqueue, load_job_plan
        from marketdata.models import Instrument as InstrumentModel

        total = 0
        for job in queryset:
            planned = load_job_plan(
                instruments=InstrumentModel.objects.filter(symbol__in=job.symbols),
                provider=job.provider,
                timeframe=job.timeframe,
                start=job.start,
                end=job.end,
                options=job.options,
            )
            load_job_enqueue(chunk_ids=planned.to_run)
            total += len(planned.to_run)
        self.message_user(
            request, f"{total} chunk(s) enqueued for the workers.", messages.SUCCESS
        )


class RepairRangeForm(forms.Form):
    instrument = forms.ModelChoiceField(queryset=Instrument.objects.filter(active=True))
    start = forms.DateTimeField(help_text="UTC, e.g. 2024-05-06 13:30")
    end = forms.DateTimeField(help_text="UTC, exclusive")

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            start, end = (
                start.replace(tzinfo=start.tzinfo or UTC),
                end.replace(tzinfo=end.tzinfo or UTC),
            )
            if end <= start:
                raise forms.ValidationError("End must be after start.")
            if end - start > timedelta(days=366):
                raise forms.ValidationError(
                    "At most a year per repair; use load_history for longer ranges."
                )
            data["start"], data["end"] = start, end
        return data


@admin.register(Gap)
class GapAdmin(admin.ModelAdmin):
    list_display = (
        "instrument", "start", "end", "missing_minutes", "state", "source",
        "bars_added", "attempts", "updated_at",
    )  # fmt: skip
    list_filter = ("state", "source", "instrument__asset_class")
    search_fields = ("instrument__symbol",)
    list_select_related = ("instrument",)
    readonly_fields = (
        "bars_added", "attempts", "error", "checked_at", "created_at", "updated_at",
    )  # fmt: skip
    autocomplete_fields = ("instrument",)
    date_hierarchy = "start"
    actions = ("repair",)
    change_list_template = "admin/marketdata/gap/change_list.html"

    @admin.action(description="Repair selected gaps (enqueue backfills)")
    def repair(self, request, queryset):
        from marketdata.gaps import gap_enqueue

        count = 0
        for gap in queryset:
            Gap.objects.filter(id=gap.id).update(state=GapState.OPEN, error="")
            gap_enqueue(gap_id=gap.id)
            count += 1
        self.message_user(request, f"{count} backfill(s) enqueued.", messages.SUCCESS)

    def get_urls(self):
        extra = [
            path(
                "repair-range/",
                self.admin_site.admin_view(self.repair_range_view),
                name="marketdata_gap_repair_range",
            ),
            path(
                "coverage/",
                self.admin_site.admin_view(self.coverage_view),
                name="marketdata_coverage",
            ),
        ]
        return [*extra, *super().get_urls()]

    def repair_range_view(self, request):
        from marketdata.gaps import gaps_repair_range

        form = RepairRangeForm(request.POST or None, initial=request.GET or None)
        if request.method == "POST" and form.is_valid():
            gap = gaps_repair_range(
                instrument=form.cleaned_data["instrument"],
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                source="admin",
            )
            self.message_user(
                request,
                f"Backfill of {gap.instrument} {gap.start:%Y-%m-%d %H:%M} → "
                f"{gap.end:%Y-%m-%d %H:%M} UTC enqueued ({gap.missing_minutes} minutes missing).",
                messages.SUCCESS,
            )
            return redirect("admin:marketdata_gap_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Repair a range",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/marketdata/repair_range.html", context)

    def coverage_view(self, request):
        """Per-instrument coverage by month: the minutes the calendar expects
        up to now against the stored ones among them (`verify_data`'s count),
        and the gaps on record."""
        symbol = request.GET.get("symbol", "").strip().upper()
        instrument = (
            Instrument.objects.filter(symbol=symbol).first() if symbol else None
        )
        months, gaps, error = [], [], ""
        if symbol and instrument is None:
            error = f"No instrument {symbol!r}."
        elif instrument is not None:
            months = monthly_minutes_coverage(instrument=instrument, now=timezone.now())
            gaps = list(
                Gap.objects.filter(instrument=instrument).order_by("-start")[:50]
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Coverage {symbol}" if symbol else "Coverage",
            "opts": self.model._meta,
            "symbol": symbol,
            "instrument": instrument,
            "months": months,
            "gaps": gaps,
            "error": error,
        }
        return TemplateResponse(request, "admin/marketdata/coverage.html", context)

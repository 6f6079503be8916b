"""Positions in admin: the same list as before, with their transactions
inline. Quantity, average cost and realized P/L are read-only there: they are
folded from the transactions on save, and a set of transactions that would
sell more than is held is refused on the form."""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import admin

from marketdata.models import Position, Transaction
from portfolio.ledger import ZERO, Entry, Oversold, fold
from portfolio.services import (
    position_open_legacy,
    position_refold,
    transaction_check,
)


class TransactionFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        entries = []
        position = self.instance
        if position.pk and position.quantity and not position.transactions.exists():
            # Its opening buy is written on save (`position_open_legacy`).
            entries.append(
                (
                    date.min,
                    -1,
                    Entry("buy", date.min, position.quantity, position.average_cost),
                )
            )
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("kind"):
                continue
            entry = Entry(
                data["kind"],
                data["date"],
                data.get("quantity") or ZERO,
                data.get("price") or ZERO,
                data.get("fee") or ZERO,
            )
            problems = transaction_check(
                kind=entry.kind,
                day=entry.date,
                quantity=entry.quantity,
                price=entry.price,
                fee=entry.fee,
            )
            if problems:
                raise forms.ValidationError(" ".join(problems.values()))
            entries.append(
                (entry.date, data.get("id").pk if data.get("id") else 0, entry)
            )
        # New rows get larger ids than stored ones: they sort last on a date.
        ordered = sorted(entries, key=lambda e: (e[0], e[1] == 0, e[1]))
        try:
            fold(e for _d, _i, e in ordered)
        except Oversold as exc:
            raise forms.ValidationError(str(exc)) from exc


class TransactionInline(admin.TabularInline):
    model = Transaction
    formset = TransactionFormSet
    fields = ("date", "kind", "quantity", "price", "fee", "note")
    ordering = ("date", "id")
    extra = 1


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = (
        "owner", "instrument", "quantity", "average_cost", "realized_pl", "opened_at",
    )  # fmt: skip
    list_filter = ("owner", "instrument__asset_class")
    search_fields = ("instrument__symbol", "owner__username")
    autocomplete_fields = ("owner", "instrument")
    list_select_related = ("owner", "instrument")
    readonly_fields = ("quantity", "average_cost", "realized_pl", "opened_at")
    inlines = (TransactionInline,)

    def save_related(self, request, form, formsets, change) -> None:
        position_open_legacy(position=form.instance)
        super().save_related(request, form, formsets, change)
        position_refold(position=form.instance)

"""Input for the portfolio pages (portfolio.services checks the meaning)."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from core.storable import validate_storable
from marketdata.calendar import market_date
from marketdata.models import AssetClass, TransactionKind
from portfolio.services import transaction_check

MAX_IMPORT_BYTES = 5 * 1024 * 1024
DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _stock_today():
    """New York's date, "today" where a stock trades: the day a form offers
    until its instrument is known (a position's page passes its own)."""
    return market_date(AssetClass.EQUITY)


def _amount(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=False, min_value=Decimal(0), max_digits=28
    )


class TransactionForm(forms.Form):
    symbol = forms.CharField(max_length=15, strip=True, required=False)
    kind = forms.ChoiceField(label="Type", choices=TransactionKind.choices)
    date = forms.DateField(initial=_stock_today, widget=DATE)
    quantity = _amount("Quantity")
    price = _amount("Price")
    fee = _amount("Fee")
    note = forms.CharField(
        max_length=200, required=False, strip=True, validators=[validate_storable]
    )

    def __init__(self, *args, symbol_required: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.symbol_required = symbol_required
        if not symbol_required:
            del self.fields["symbol"]

    def clean(self):
        data = super().clean()
        if (
            self.symbol_required
            and not data.get("symbol")
            and "symbol" not in self.errors
        ):
            self.add_error("symbol", "Choose an instrument.")
        for name in ("quantity", "price", "fee"):
            if data.get(name) is None and name not in self.errors:
                data[name] = Decimal(0)
        if self.errors:
            return data
        for name, problem in transaction_check(
            kind=data["kind"],
            day=data["date"],
            quantity=data["quantity"],
            price=data["price"],
            fee=data["fee"],
        ).items():
            self.add_error(name, problem)
        return data

    def entry(self) -> dict:
        """The cleaned transaction as `portfolio.services` takes it."""
        data = self.cleaned_data
        return {
            "kind": data["kind"],
            "day": data["date"],
            "quantity": data["quantity"],
            "price": data["price"],
            "fee": data["fee"],
            "note": data["note"],
        }


class CloseForm(forms.Form):
    date = forms.DateField(initial=_stock_today, widget=DATE)
    price = forms.DecimalField(min_value=Decimal(0), max_digits=20)
    fee = _amount("Fee")


class ImportForm(forms.Form):
    file = forms.FileField()
    skip_bad = forms.BooleanField(
        required=False, label="Skip bad lines and import the rest"
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB."
            )
        return upload

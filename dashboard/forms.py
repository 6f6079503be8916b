"""Input for the watchlist editing endpoints (the services validate meaning)."""

from __future__ import annotations

from django import forms

from core.storable import validate_storable


class WatchlistNameForm(forms.Form):
    name = forms.CharField(max_length=60, strip=True)


class SymbolForm(forms.Form):
    symbol = forms.CharField(max_length=15, strip=True)


class OrderForm(forms.Form):
    """`order` repeated: watchlist ids or symbols, first to last."""

    def __init__(self, data=None, *, kind=str):
        super().__init__(data)
        self.kind = kind

    def clean(self):
        values = self.data.getlist("order") if self.data else []
        validate_storable(values)
        try:
            self.cleaned_data["order"] = [self.kind(value) for value in values]
        except ValueError as exc:
            raise forms.ValidationError("Bad order value.") from exc
        if not values:
            raise forms.ValidationError("Nothing to order.")
        return self.cleaned_data

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


class AnomalyFilterForm(forms.Form):
    """Filters of the anomalies page (`dashboard.anomaly_views`)."""

    symbol = forms.CharField(max_length=15, required=False)
    kind = forms.ChoiceField(required=False)
    start = forms.DateField(required=False, label="From (UTC date)")
    end = forms.DateField(required=False, label="To (UTC date, inclusive)")
    min_score = forms.FloatField(min_value=0, max_value=1e6, required=False)

    def __init__(self, *args, **kwargs) -> None:
        from marketdata.models import AnomalyKind

        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "Any kind"), *AnomalyKind.choices]

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "must not be before the start date")
        return data

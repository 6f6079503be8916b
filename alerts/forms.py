from __future__ import annotations

from django import forms

from alerts.kinds import OPTIONAL_FIELDS, kind_fields, kind_get, kinds_all
from alerts.kinds.events import anomaly_kinds, pattern_kinds
from alerts.kinds.multi import MAX_CONDITIONS
from alerts.kinds.portfolio import MEASURES
from alerts.models import (
    RULE_FIELDS,
    AlertRule,
    AlertTimeframe,
    DeliveryChannel,
    Direction,
    MovingAverage,
    RuleKind,
)
from alerts.selectors import instrument_for_rule

# A condition row's inputs: the rule's own field names (see alerts.kinds.multi).
CONDITION_FIELDS = (
    "kind",
    "symbol",
    "direction",
    *(name for name in OPTIONAL_FIELDS if name not in ("combine", "conditions")),
)
LABELS = {
    "level": "Level",
    "hysteresis": "Re-arm band",
    "period": "Period",
    "fast_period": "Fast period",
    "slow_period": "Slow period",
    "ma_type": "Average",
    "measure": "Portfolio measure",
    "pattern": "Pattern",
    "anomaly": "Anomaly",
    "combine": "Combine conditions",
    "cooldown_seconds": "Cooldown (seconds)",
    "one_shot": "One-shot (deactivate after firing)",
    "notify_email": "Also email me",
}


def _uses() -> dict[str, list[str]]:
    """Field name -> the kinds using it (for the page script)."""
    uses: dict[str, list[str]] = {}
    for kind, fields in kind_fields().items():
        for name in fields:
            uses.setdefault(name, []).append(kind)
    return uses


class AlertRuleForm(forms.ModelForm):
    """Create/edit a rule; the instrument is picked by its symbol.

    Field checks per kind live in the kinds registry (`alerts.kinds`, run by
    `AlertRule.clean`), so the form, the admin and the services all give the
    same messages. A multi-condition rule's conditions come from up to five
    rows of inputs (`c1_kind`, `c1_symbol`, …); empty rows are ignored and
    errors name the condition ("Condition 3: …").
    """

    symbol = forms.CharField(
        max_length=15,
        required=False,
        help_text="Instrument symbol, e.g. AAPL or BTC/USD (not for portfolio "
        "or multi-condition rules).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    conditions = forms.JSONField(required=False, widget=forms.HiddenInput)

    channels = forms.ModelMultipleChoiceField(
        queryset=DeliveryChannel.objects.none(),
        required=False,
        label="Deliver to",
        help_text="Your webhook, Slack, Discord or Telegram channels "
        "(manage them under Alerts › Channels).",
    )

    class Meta:
        model = AlertRule
        fields = RULE_FIELDS
        labels = LABELS
        widgets = {"note": forms.TextInput(attrs={"maxlength": 200})}

    field_order = ("symbol", *RULE_FIELDS, "channels")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound and self.instance.instrument_id:
            self.fields["symbol"].initial = self.instance.instrument.symbol
        self.fields["kind"].widget.attrs["data-kind-select"] = "1"
        # Only the owner's channels can be chosen (or posted).
        self.fields["channels"].queryset = DeliveryChannel.objects.filter(
            owner_id=self.instance.owner_id
        )
        if self.instance.pk and not self.is_bound:
            self.fields["channels"].initial = list(self.instance.channels.all())
        if not self.fields["channels"].queryset.exists():
            self.fields["channels"].help_text = (
                "You have no channels yet: add a webhook, Slack, Discord or "
                "Telegram channel under Alerts › Channels."
            )
        self.fields["level"].help_text = (
            "Price level, percent (e.g. 3 or -2), RSI level (0-100), volume "
            "multiple (e.g. 3) or portfolio amount, depending on the kind."
        )
        self.fields["pattern"].widget = forms.Select(
            choices=[("", "---------"), *sorted(pattern_kinds().items())]
        )
        self.fields["anomaly"].widget = forms.Select(
            choices=[("", "---------"), *anomaly_kinds().items()]
        )
        for name in ("level", "hysteresis"):
            self.fields[name].widget.attrs["step"] = "any"
        uses = _uses()
        for name in OPTIONAL_FIELDS:
            if name == "conditions":
                continue
            self.fields[name].widget.attrs["data-kinds"] = " ".join(uses.get(name, []))
            self.fields[name].required = False
        self.fields["symbol"].widget.attrs["data-kinds"] = " ".join(
            k.name for k in kinds_all() if k.needs_instrument
        )
        self.fields["direction"].widget.attrs["data-kinds"] = " ".join(
            k.name for k in kinds_all() if k.directional
        )
        self._add_condition_rows()

    # -- condition rows -------------------------------------------------------------
    def _add_condition_rows(self) -> None:
        uses = _uses()
        condition_kinds = [(k.name, k.label) for k in kinds_all() if k.condition]
        choices = {
            "kind": [("", "---------"), *condition_kinds],
            "direction": Direction.choices,
            "timeframe": [("", "---------"), *AlertTimeframe.choices],
            "ma_type": [("", "---------"), *MovingAverage.choices],
            "measure": [("", "---------"), *MEASURES.items()],
            "pattern": [("", "---------"), *sorted(pattern_kinds().items())],
            "anomaly": [("", "---------"), *anomaly_kinds().items()],
        }
        initial = list(self.instance.conditions or []) if not self.is_bound else []
        for number in range(1, MAX_CONDITIONS + 1):
            row = initial[number - 1] if number <= len(initial) else {}
            for name in CONDITION_FIELDS:
                key = f"c{number}_{name}"
                if name in choices:
                    field = forms.ChoiceField(choices=choices[name], required=False)
                else:
                    field = forms.CharField(max_length=32, required=False)
                field.label = (
                    "Kind"
                    if name == "kind"
                    else LABELS.get(name, name.replace("_", " ").capitalize())
                )
                field.initial = row.get(name, "")
                if name == "kind":
                    field.widget.attrs["data-condition-kind"] = "1"
                elif name == "direction":
                    field.widget.attrs["data-kinds"] = " ".join(
                        k.name for k in kinds_all() if k.directional
                    )
                elif name != "symbol":
                    field.widget.attrs["data-kinds"] = " ".join(uses.get(name, []))
                elif name == "symbol":
                    field.widget.attrs["data-kinds"] = " ".join(
                        k.name for k in kinds_all() if k.needs_instrument
                    )
                self.fields[key] = field

    def condition_rows(self) -> list[list]:
        """Bound fields of each condition row (for the template)."""
        return [
            [self[f"c{number}_{name}"] for name in CONDITION_FIELDS]
            for number in range(1, MAX_CONDITIONS + 1)
        ]

    def main_fields(self) -> list:
        return [
            self[name]
            for name in self.fields
            if name != "conditions" and not _is_row(name)
        ]

    # -- cleaning ---------------------------------------------------------------------
    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip().upper()
        if not symbol:
            return ""
        instrument = instrument_for_rule(symbol=symbol)
        if instrument is None:
            raise forms.ValidationError(f"Unknown symbol {symbol!r}.")
        self.instance.instrument = instrument
        return symbol

    def clean(self) -> dict:
        data = super().clean()
        try:
            kind = kind_get(data.get("kind") or "")
        except KeyError:
            return data
        if kind.needs_instrument:
            if not data.get("symbol") and "symbol" not in self.errors:
                self.add_error("symbol", "Enter the instrument's symbol.")
        else:
            self.instance.instrument = None
        if kind.name == RuleKind.MULTI:
            data["conditions"] = self._rows()
            self.instance.conditions = data["conditions"]
        return data

    def _rows(self) -> list[dict]:
        """The filled condition rows, in order, as condition dicts."""
        rows = []
        for number in range(1, MAX_CONDITIONS + 1):
            row = {
                name: (self.cleaned_data.get(f"c{number}_{name}") or "").strip()
                for name in CONDITION_FIELDS
            }
            if not row["kind"]:
                continue
            rows.append({k: v for k, v in row.items() if v != ""})
        return rows

    def _update_errors(self, errors) -> None:
        # The model names the instrument; this form picks it by symbol.
        moved = getattr(errors, "error_dict", {}).pop("instrument", None)
        if moved and "symbol" not in self.errors:
            errors.error_dict["symbol"] = moved
        super()._update_errors(errors)

    @property
    def instrument(self):
        return self.instance.instrument if self.instance.instrument_id else None

    def rule_fields(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in RULE_FIELDS}


def _is_row(name: str) -> bool:
    head, _, _rest = name.partition("_")
    return len(head) == 2 and head[0] == "c" and head[1].isdigit()


class DryRunForm(forms.Form):
    days = forms.IntegerField(
        min_value=1, max_value=30, initial=5, label="Days of history"
    )


class HistoryFilterForm(forms.Form):
    symbol = forms.CharField(max_length=15, required=False)
    kind = forms.ChoiceField(
        choices=[("", "Any kind"), *RuleKind.choices], required=False
    )
    days = forms.IntegerField(
        min_value=1, max_value=3650, required=False, label="Last N days"
    )
    unseen = forms.BooleanField(required=False, label="Unseen only")

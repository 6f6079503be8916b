from __future__ import annotations

from django import forms

from alerts.models import RULE_FIELDS, AlertRule, DeliveryChannel, RuleKind
from alerts.selectors import instrument_for_rule


class AlertRuleForm(forms.ModelForm):
    """Create/edit a rule; the instrument is picked by its symbol.

    Field checks per kind live in `AlertRule.clean`, so the form, the admin
    and the services all give the same messages.
    """

    symbol = forms.CharField(
        max_length=15,
        help_text="Instrument symbol, e.g. AAPL or BTC/USD.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

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
        labels = {
            "level": "Level",
            "hysteresis": "Re-arm band",
            "period": "Period",
            "fast_period": "Fast period",
            "slow_period": "Slow period",
            "ma_type": "Average",
            "cooldown_seconds": "Cooldown (seconds)",
            "one_shot": "One-shot (deactivate after firing)",
            "notify_email": "Also email me",
        }
        widgets = {"note": forms.TextInput(attrs={"maxlength": 200})}

    field_order = ("symbol", *RULE_FIELDS, "channels")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.fields["symbol"].initial = self.instance.instrument.symbol
        self.fields["kind"].widget.attrs["data-kind-select"] = "1"
        # Only the owner's channels can be chosen (or posted).
        self.fields["channels"].queryset = DeliveryChannel.objects.filter(
            owner_id=self.instance.owner_id
        )
        if self.instance.pk and not self.is_bound:
            self.fields["channels"].initial = list(self.instance.channels.all())
        self.fields["level"].help_text = (
            "Price level, percent (e.g. 3 or -2), RSI level (0-100) or volume "
            "multiple (e.g. 3), depending on the kind."
        )
        self.fields["period"].help_text = "RSI period, or minutes averaged for volume."
        for name in ("level", "hysteresis"):
            self.fields[name].widget.attrs["step"] = "any"
        # Which fields each kind uses, for the page script to show/hide.
        uses = {
            RuleKind.PRICE: "level hysteresis",
            RuleKind.CHANGE_PCT: "level hysteresis",
            RuleKind.RSI: "level hysteresis timeframe period",
            RuleKind.MA_CROSS: "timeframe fast_period slow_period ma_type",
            RuleKind.VOLUME_SPIKE: "level period",
        }
        for name in (
            "level",
            "hysteresis",
            "timeframe",
            "period",
            "fast_period",
            "slow_period",
            "ma_type",
        ):
            kinds = [
                str(kind) for kind, fields in uses.items() if name in fields.split()
            ]
            self.fields[name].widget.attrs["data-kinds"] = " ".join(kinds)
            self.fields[name].required = False

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip().upper()
        instrument = instrument_for_rule(symbol=symbol)
        if instrument is None:
            raise forms.ValidationError(f"Unknown symbol {symbol!r}.")
        self.instance.instrument = instrument
        return symbol

    @property
    def instrument(self):
        return self.instance.instrument if self.instance.instrument_id else None

    def rule_fields(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in RULE_FIELDS}


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

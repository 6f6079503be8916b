from __future__ import annotations

from django import forms

from alerts.delivery_models import ChannelKind


class DeliveryChannelForm(forms.Form):
    """Add or edit a delivery channel. Checks live in
    `alerts.channel_services.channel_validate` (the view maps its errors
    onto these fields). Secret fields are never filled back in."""

    name = forms.CharField(max_length=60)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    url = forms.CharField(
        max_length=500,
        required=False,
        label="Webhook URL",
        help_text="Webhook, Slack or Discord: the address to POST to. "
        "Leave blank when editing to keep the saved one.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    secret = forms.CharField(
        max_length=200,
        required=False,
        label="Secret",
        help_text="Webhook: signing secret (blank makes one, shown once). "
        "Telegram: the bot token. Leave blank when editing to keep it.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    chat_id = forms.CharField(max_length=64, required=False, label="Telegram chat id")

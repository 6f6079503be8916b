"""Delivery channels page: list, add, edit, test, turn on/off, delete.

Login required; a user sees and touches only their own channels (someone
else's id is a 404).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from alerts.channel_forms import DeliveryChannelForm
from alerts.channel_services import (
    channel_create,
    channel_delete,
    channel_set_enabled,
    channel_test_send,
    channel_update,
)
from alerts.delivery_models import ChannelKind
from alerts.selectors import channel_for_user, channels_for_user
from dashboard.views import _page_context


def _channel_or_404(request, pk: int):
    channel = channel_for_user(user=request.user, channel_id=pk)
    if channel is None:
        raise Http404("No such channel.")
    return channel


def _page(request, form, *, channel=None, created_secret="", status=200):
    return render(
        request,
        "dashboard/alerts_channels.html",
        {
            **_page_context(request),
            "channels": list(channels_for_user(user=request.user)),
            "form": form,
            "editing": channel,
            "created_secret": created_secret,
        },
        status=status,
    )


def _save(request, form, channel=None):
    """Validate through the service; errors go back onto the form."""
    if not form.is_valid():
        return None
    try:
        if channel is None:
            return channel_create(owner=request.user, **form.cleaned_data)
        return channel_update(channel=channel, **form.cleaned_data)
    except ValidationError as error:
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def channels_index(request):
    if request.method != "POST":
        return _page(request, DeliveryChannelForm())
    form = DeliveryChannelForm(request.POST)
    channel = _save(request, form)
    if channel is None:
        return _page(request, form, status=400)
    messages.success(request, f"Channel added: {channel}.")
    if channel.kind == ChannelKind.WEBHOOK and not form.cleaned_data.get("secret"):
        # A generated signing secret is shown this once, never again.
        return _page(request, DeliveryChannelForm(), created_secret=channel.secret)
    return redirect("dashboard:alert_channels")


@login_required
@require_http_methods(["GET", "POST"])
def channel_edit(request, pk: int):
    channel = _channel_or_404(request, pk)
    if request.method != "POST":
        form = DeliveryChannelForm(
            initial={
                "name": channel.name,
                "kind": channel.kind,
                "chat_id": channel.chat_id,
            }
        )
        return _page(request, form, channel=channel)
    form = DeliveryChannelForm(request.POST)
    if _save(request, form, channel) is None:
        return _page(request, form, channel=channel, status=400)
    messages.success(request, f"Channel saved: {channel}.")
    return redirect("dashboard:alert_channels")


@login_required
@require_POST
def channel_test(request, pk: int):
    channel = _channel_or_404(request, pk)
    ok, detail = channel_test_send(channel=channel)
    if ok:
        messages.success(request, f"Test message delivered to {channel.name}.")
    else:
        messages.error(request, f"Test message to {channel.name} failed: {detail}")
    return redirect("dashboard:alert_channels")


@login_required
@require_POST
def channel_toggle(request, pk: int):
    channel = _channel_or_404(request, pk)
    channel_set_enabled(channel=channel, enabled=not channel.enabled)
    state = "turned on" if channel.enabled else "turned off"
    messages.success(request, f"Channel {state}: {channel.name}.")
    return redirect("dashboard:alert_channels")


@login_required
@require_POST
def channel_remove(request, pk: int):
    channel = _channel_or_404(request, pk)
    channel_delete(channel=channel)
    messages.success(request, f"Channel deleted: {channel.name}.")
    return redirect("dashboard:alert_channels")

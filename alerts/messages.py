"""The words of delivered alerts: one alert, a digest of alerts, a test
message. Each is a `transports.Message`; the webhook JSON is documented in
the README ("Delivery channels")."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from alerts.transports import Message


def history_link() -> str:
    base = settings.SITE_URL.rstrip("/")
    return f"{base}/alerts/" if base else ""


def event_lines(event) -> list[str]:
    lines = [
        event.message,
        f"Instrument: {event.subject}",
        f"Time (UTC): {event.ts:%Y-%m-%d %H:%M:%S}",
    ]
    if event.price is not None:
        lines.append(f"Last price: {event.price.normalize():f}")
    if event.note:
        lines.append(f"Note: {event.note}")
    if event.rule is not None:
        lines.append(f"Rule: {event.rule.describe()}")
    return lines


def event_message(*, event, delivery_id: int | None) -> Message:
    from alerts.services import alert_payload

    lines = event_lines(event)
    link = history_link()
    payload = alert_payload(event=event)
    if link:
        payload["url"] = link
    return Message(
        subject=f"[Tapeline] {event.message}",
        text="\n".join(lines),
        payload={
            "type": "alert",
            "delivery": delivery_id,
            "sent_at": timezone.now().isoformat(),
            "alert": payload,
        },
        link=link,
    )


def digest_message(*, events: list, delivery_id: int | None) -> Message:
    from alerts.services import alert_payload

    count = len(events)
    window = settings.ALERT_DIGEST_WINDOW_SECONDS
    head = f"{count} more alert{'s' if count != 1 else ''} within {window:g} s"
    lines = [head, ""]
    lines += [f"• {e.ts:%H:%M:%S} {e.subject}: {e.message}" for e in events]
    link = history_link()
    return Message(
        subject=f"[Tapeline] Digest: {head}",
        text="\n".join(lines),
        payload={
            "type": "digest",
            "delivery": delivery_id,
            "sent_at": timezone.now().isoformat(),
            "count": count,
            "window_seconds": window,
            "alerts": [alert_payload(event=e) for e in events],
        },
        link=link,
    )


def test_message(*, channel) -> Message:
    text = (
        f"Test message from Tapeline to your channel {channel.name!r}. "
        "Alerts you route here will look like this."
    )
    return Message(
        subject="[Tapeline] Test message",
        text=text,
        payload={
            "type": "test",
            "delivery": None,
            "sent_at": timezone.now().isoformat(),
            "channel": channel.name,
            "message": text,
        },
        link=history_link(),
    )

"""Sending one message to one delivery channel: the wire format of each kind,
the address check, and what an answer means (sent, retry later, or give up).

Webhook signature (kind `webhook`)
----------------------------------
The body is JSON (UTF-8). Three headers come with it::

    X-Tapeline-Delivery:  <delivery id>       (the same on every retry)
    X-Tapeline-Timestamp: <unix seconds when this attempt was made>
    X-Tapeline-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

A receiver recomputes the HMAC over the raw bytes it received, compares in
constant time, and refuses timestamps more than a few minutes away from its
clock (a replayed request keeps its old timestamp, which is signed).

Answers
-------
2xx is sent. 408, 429, 5xx, timeouts and connection errors are retried
(`TransportError(permanent=False)`, with the endpoint's Retry-After when it
gave one). Any other 4xx, and redirects (never followed: they could point
anywhere), are permanent. Addresses are checked here at send time too, since
DNS can change after the channel was saved (`url_check`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings

from alerts.delivery_models import ChannelKind, DeliveryChannel

USER_AGENT = "Tapeline-Delivery/1"
RETRY_STATUSES = {408, 429}


@dataclass(frozen=True)
class Message:
    """What any channel sends: a one-line subject, a plain-text body, the
    JSON of a webhook, and a link to the alert history (may be empty)."""

    subject: str
    text: str
    payload: dict = field(default_factory=dict)
    link: str = ""


class TransportError(Exception):
    def __init__(
        self, message: str, *, permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class UnsafeURL(ValueError):
    """The address is not one Tapeline may post to (message says why)."""


def url_check(url: str, *, resolve: bool = True) -> str:
    """Refuse non-http(s) addresses and, unless ALERT_WEBHOOK_ALLOW_PRIVATE,
    hosts resolving to loopback, private, link-local or reserved addresses."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("The address must start with http:// or https://.")
    if not parts.hostname:
        raise UnsafeURL("The address has no host name.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("The address has an invalid port.") from None
    if settings.ALERT_WEBHOOK_ALLOW_PRIVATE or not resolve:
        return url.strip()
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeURL(f"The host {parts.hostname!r} could not be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global or address.is_multicast:
            raise UnsafeURL(
                f"The host {parts.hostname!r} resolves to {address}, a loopback, "
                "private, link-local or reserved address; posting there is "
                "turned off (ALERT_WEBHOOK_ALLOW_PRIVATE)."
            )
    return url.strip()


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"sha256={digest}"


def channel_send(
    *, channel: DeliveryChannel, message: Message, delivery_id: int | None = None
) -> None:
    """Send `message` over `channel`; raises TransportError or UnsafeURL."""
    if channel.kind == ChannelKind.TELEGRAM:
        _telegram(channel, message)
        return
    try:
        url = url_check(channel.url)
    except UnsafeURL as exc:
        raise TransportError(str(exc), permanent=True) from None
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if channel.kind == ChannelKind.SLACK:
        body = _json(slack_body(message))
    elif channel.kind == ChannelKind.DISCORD:
        body = _json(discord_body(message))
    else:
        body = _json(message.payload)
        stamp = str(int(time.time()))
        headers["X-Tapeline-Timestamp"] = stamp
        headers["X-Tapeline-Delivery"] = str(delivery_id or 0)
        headers["X-Tapeline-Signature"] = signature(
            secret=channel.secret, timestamp=stamp, body=body
        )
    _check_answer(_post(url, body, headers))


def slack_body(message: Message) -> dict:
    """Slack incoming-webhook JSON: `text` (notification fallback) + blocks."""
    text = _slack_escape(message.text)
    if message.link:
        text += f"\n<{message.link}|Alert history>"
    return {
        "text": _slack_escape(message.subject),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
        ],
    }


def discord_body(message: Message) -> dict:
    """Discord webhook JSON: `content` plus one embed; mentions never ping."""
    embed = {"title": message.subject[:256], "description": message.text[:4096]}
    if message.link:
        embed["url"] = message.link
    return {
        "content": message.subject[:2000],
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    }


def telegram_text(message: Message) -> str:
    text = message.text
    if message.link:
        text += f"\n{message.link}"
    return text[:4096]


def _telegram(channel: DeliveryChannel, message: Message) -> None:
    base = settings.TELEGRAM_API_BASE.rstrip("/")
    url = f"{base}/bot{channel.secret}/sendMessage"
    body = _json(
        {
            "chat_id": channel.chat_id,
            "text": telegram_text(message),
            "disable_web_page_preview": True,
        }
    )
    response = _post(
        url, body, {"Content-Type": "application/json"}, secrets=(channel.secret,)
    )
    if response.status_code == 429 or response.status_code >= 400:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and answer.get("description"):
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            raise TransportError(
                f"Telegram {response.status_code}: {answer['description']}"[:300],
                permanent=_permanent(response.status_code),
                retry_after=float(retry_after) if retry_after else None,
            )
    _check_answer(response)


def _post(
    url: str, body: bytes, headers: dict, *, secrets: tuple[str, ...] = ()
) -> requests.Response:
    timeout = settings.ALERT_DELIVERY_TIMEOUT
    try:
        return requests.post(
            url,
            data=body,
            headers=headers,
            timeout=(timeout, timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        raise TransportError(
            f"timed out after {timeout:g} s", permanent=False
        ) from None
    except requests.RequestException as exc:
        # The innermost reason names host and port, not the URL's path,
        # which may hold a token (Slack, Discord, Telegram).
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", None) or exc
        text = str(reason)
        for secret in (*secrets, urlsplit(url).path):
            if secret and secret != "/":
                text = text.replace(secret, "…")
        raise TransportError(
            f"connection failed: {type(exc).__name__}: {text}"[:300], permanent=False
        ) from None


def _check_answer(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise TransportError(
            f"HTTP {status}: redirects are not followed", permanent=True
        )
    snippet = " ".join(response.text[:120].split())
    raise TransportError(
        f"HTTP {status}{': ' + snippet if snippet else ''}"[:300],
        permanent=_permanent(status),
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in RETRY_STATUSES


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

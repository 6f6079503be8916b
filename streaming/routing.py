"""WebSocket routes served by the web process (wrapped in core/asgi.py)."""

from __future__ import annotations

from django.urls import path

from streaming.consumers import MarketConsumer

websocket_urlpatterns: list = [
    path("ws/market/", MarketConsumer.as_asgi()),
]

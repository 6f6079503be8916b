"""The browser WebSocket, driven through the real ASGI stack (origin check,
session auth) on the real Redis pub/sub channel layer."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from core.asgi import application
from core.groups import STATUS_GROUP, symbol_group, user_group
from streaming.snapshots import snapshots_put

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost")


def snapshot(symbol: str, seq: int, last: str) -> dict:
    return {
        "symbol": symbol,
        "seq": seq,
        "ts": "2026-11-20T15:00:00+00:00",
        "received_at": 1.0,
        "provider": "simulator",
        "last": last,
        "bid": None,
        "ask": None,
        "open": "100",
        "high": last,
        "low": "99",
        "volume": "10",
        "prev_close": "100",
        "change": "0",
        "change_pct": "0",
        "freshness": "live",
        "minute": None,
    }


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/market/", headers=headers)


async def open_socket(user) -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie)(user)
    ws = communicator(cookie)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    hello = await ws.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return ws


async def receive_until(ws, kind: str, timeout: float = 5) -> dict:
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        if frame["type"] == kind:
            return frame


def run(coro_fn):
    async_to_sync(coro_fn)()


def test_anonymous_socket_is_closed_with_4401(db):
    async def scenario():
        ws = communicator()
        connected, _ = await ws.connect(timeout=5)
        assert connected
        closing = await ws.receive_output(timeout=5)
        assert closing == {"type": "websocket.close", "code": 4401}
        await ws.wait()

    run(scenario)


def test_foreign_origin_is_refused(user):
    async def scenario():
        cookie = await sync_to_async(session_cookie)(user)
        ws = WebsocketCommunicator(
            application,
            "/ws/market/",
            headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie)],
        )
        connected, _ = await ws.connect(timeout=5)
        assert not connected

    run(scenario)


def test_subscribe_sends_snapshot_then_conflated_live_updates(user, instruments):
    snapshots_put(snapshots=[snapshot("AAPL", 7, "190.10")])

    async def scenario():
        ws = await open_socket(user)
        await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL", "msft"]})
        first = await receive_until(ws, "snapshot")
        assert [s["symbol"] for s in first["snapshots"]] == ["AAPL"]
        assert first["snapshots"][0]["seq"] == 7
        assert first["missing"] == ["MSFT"]
        assert first["instruments"]["AAPL"]["decimals"] == 2

        layer = get_channel_layer()
        for seq, price in ((8, "190.20"), (9, "190.30"), (10, "190.40")):
            await layer.group_send(
                symbol_group("AAPL"),
                {"type": "market.update", "snapshot": snapshot("AAPL", seq, price)},
            )
        await layer.group_send(
            symbol_group("MSFT"),
            {"type": "market.update", "snapshot": snapshot("MSFT", 1, "410.00")},
        )
        latest: dict[str, dict] = {}
        while latest.get("AAPL", {}).get("seq") != 10 or "MSFT" not in latest:
            frame = await receive_until(ws, "updates")
            for doc in frame["snapshots"]:
                assert doc["seq"] > latest.get(doc["symbol"], {}).get("seq", 0)
                latest[doc["symbol"]] = doc
        assert latest["AAPL"]["last"] == "190.40"
        assert latest["MSFT"]["last"] == "410.00"

        await ws.send_json_to({"action": "unsubscribe", "symbols": ["AAPL"]})
        gone = await receive_until(ws, "unsubscribed")
        assert gone["symbols"] == ["AAPL"]
        await layer.group_send(
            symbol_group("AAPL"),
            {"type": "market.update", "snapshot": snapshot("AAPL", 11, "191.00")},
        )
        await layer.group_send(
            symbol_group("MSFT"),
            {"type": "market.update", "snapshot": snapshot("MSFT", 2, "411.00")},
        )
        frame = await receive_until(ws, "updates")
        assert [d["symbol"] for d in frame["snapshots"]] == ["MSFT"]
        await ws.disconnect()

    run(scenario)


def test_bad_input_gets_error_frames_and_socket_survives(user, instruments):
    async def scenario():
        ws = await open_socket(user)
        await ws.send_to(text_data="not json{")
        assert (await ws.receive_json_from(timeout=5))["code"] == "bad_message"
        await ws.send_json_to({"action": "subscribe", "symbols": "AAPL"})
        assert (await ws.receive_json_from(timeout=5))["code"] == "bad_message"
        await ws.send_json_to({"action": "launch"})
        assert (await ws.receive_json_from(timeout=5))["code"] == "bad_message"
        await ws.send_json_to({"action": "subscribe", "symbols": ["NOPE", "AAPL"]})
        error = await ws.receive_json_from(timeout=5)
        assert error["code"] == "unknown_symbols"
        assert error["symbols"] == ["NOPE"]
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "snapshot" and reply["missing"] == ["AAPL"]
        await ws.send_json_to({"action": "ping"})
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await ws.disconnect()

    run(scenario)


def test_instrument_cap_per_connection(user, instruments, settings):
    settings.WS_MAX_INSTRUMENTS = 2

    async def scenario():
        ws = await open_socket(user)
        await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await receive_until(ws, "snapshot")
        await ws.send_json_to({"action": "subscribe", "symbols": ["NVDA"]})
        error = await ws.receive_json_from(timeout=5)
        assert error["code"] == "too_many_instruments"
        assert error["symbols"] == ["NVDA"]
        # An oversized list is refused before any lookup.
        await ws.send_json_to({"action": "subscribe", "symbols": ["X"] * 5000})
        error = await ws.receive_json_from(timeout=5)
        assert error["code"] == "too_many_instruments"
        await ws.disconnect()

    run(scenario)


def test_flood_gets_error_frames_then_closed(user, settings):
    settings.WS_MAX_MESSAGES_PER_SECOND = 5

    async def scenario():
        ws = await open_socket(user)
        for _ in range(30):
            await ws.send_json_to({"action": "ping"})
        codes = []
        while True:
            output = await ws.receive_output(timeout=5)
            if output["type"] == "websocket.close":
                assert output["code"] == 4429
                break
            frame = json.loads(output["text"])
            codes.append(frame.get("code") or frame["type"])
        assert codes.count("pong") == 5
        assert "rate_limited" in codes

    run(scenario)


def test_alerts_reach_only_their_owner(user, other_user):
    async def scenario():
        mine = await open_socket(user)
        theirs = await open_socket(other_user)
        layer = get_channel_layer()
        await layer.group_send(
            user_group(other_user.pk),
            {"type": "alert.fired", "alert": {"id": 1, "message": "for rival"}},
        )
        await layer.group_send(
            user_group(user.pk),
            {"type": "alert.fired", "alert": {"id": 2, "message": "for trader"}},
        )
        got = await receive_until(mine, "alert")
        assert got["alert"]["message"] == "for trader"
        got = await receive_until(theirs, "alert")
        assert got["alert"]["message"] == "for rival"
        # Nothing else is on the way to either socket.
        assert await mine.receive_nothing(timeout=0.5)
        assert await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()

    run(scenario)


def test_feed_status_only_for_staff_who_ask(user, staff_user):
    async def scenario():
        plain = await open_socket(user)
        staff = await open_socket(staff_user)
        await plain.send_json_to({"action": "status"})
        assert (await plain.receive_json_from(timeout=5))["code"] == "forbidden"
        await staff.send_json_to({"action": "status"})
        await staff.send_json_to({"action": "ping"})
        await receive_until(staff, "pong")  # the join has happened
        await get_channel_layer().group_send(
            STATUS_GROUP, {"type": "feed.status", "status": {"connections": []}}
        )
        got = await receive_until(staff, "status")
        assert got["status"] == {"connections": []}
        assert await plain.receive_nothing(timeout=0.5)
        await plain.disconnect()
        await staff.disconnect()

    run(scenario)


def test_clients_sharing_instruments_each_end_with_the_latest_state(user, instruments):
    async def scenario():
        first = await open_socket(user)
        second = await open_socket(user)
        await first.send_json_to({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await receive_until(first, "snapshot")
        await second.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
        await receive_until(second, "snapshot")
        layer = get_channel_layer()
        for seq in range(1, 31):
            for symbol in ("AAPL", "MSFT"):
                await layer.group_send(
                    symbol_group(symbol),
                    {
                        "type": "market.update",
                        "snapshot": snapshot(symbol, seq, str(seq)),
                    },
                )
        for ws, wanted in ((first, {"AAPL", "MSFT"}), (second, {"AAPL"})):
            latest: dict[str, int] = {}
            while any(latest.get(s) != 30 for s in wanted):
                frame = await receive_until(ws, "updates")
                for doc in frame["snapshots"]:
                    assert doc["symbol"] in wanted
                    latest[doc["symbol"]] = doc["seq"]
        # One client leaving does not stop the other's stream.
        await second.disconnect()
        await layer.group_send(
            symbol_group("AAPL"),
            {"type": "market.update", "snapshot": snapshot("AAPL", 31, "31")},
        )
        frame = await receive_until(first, "updates")
        assert frame["snapshots"][0]["seq"] == 31
        await first.disconnect()

    run(scenario)


def test_naive_mode_sends_one_frame_per_tick(user, instruments, settings):
    settings.WS_CONFLATE_MS = 0

    async def scenario():
        ws = await open_socket(user)
        await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
        await receive_until(ws, "snapshot")
        layer = get_channel_layer()
        for seq in (1, 2, 3):
            await layer.group_send(
                symbol_group("AAPL"),
                {"type": "market.update", "snapshot": snapshot("AAPL", seq, "1")},
            )
        seqs = [
            (await receive_until(ws, "updates"))["snapshots"][0]["seq"]
            for _ in range(3)
        ]
        assert seqs == [1, 2, 3]
        await ws.disconnect()

    run(scenario)


def test_ops_alerts_reach_staff_sockets_only(user, staff_user):
    """The monitor's records, stored by the real service, reach staff as
    `ops_alert` frames (raised, then cleared); a non-staff socket gets none."""
    from datetime import UTC, datetime

    from alerts.ops_services import ops_alerts_record

    raised = {
        "key": "k1",
        "kind": "disconnected",
        "connection": "alpaca:equity",
        "provider": "alpaca",
        "worker": "host:1:0/1",
        "message": "alpaca:equity: not connected for 5 min 2 s",
        "raised_at": datetime.now(UTC),
        "cleared_at": None,
    }

    async def scenario():
        plain = await open_socket(user)
        staff = await open_socket(staff_user)
        await sync_to_async(ops_alerts_record)(changes=[raised])
        got = await receive_until(staff, "ops_alert")
        assert got["alert"]["message"] == raised["message"]
        assert got["alert"]["active"] is True and got["alert"]["url"] == "/status/"
        cleared = {**raised, "cleared_at": datetime.now(UTC)}
        await sync_to_async(ops_alerts_record)(changes=[cleared])
        # A retried batch (same key, already stored) is not sent again.
        await sync_to_async(ops_alerts_record)(changes=[cleared])
        got = await receive_until(staff, "ops_alert")
        assert got["alert"]["active"] is False and got["alert"]["cleared_at"]
        assert await staff.receive_nothing(timeout=0.5)
        assert await plain.receive_nothing(timeout=0.5)
        await plain.disconnect()
        await staff.disconnect()

    run(scenario)


def test_anomalies_reach_the_watchers_of_their_instrument(user, instruments):
    anomaly = {
        "symbol": "AAPL", "kind": "volume_surge", "ts": "2026-11-20T15:00:00+00:00",
        "score": 7.5, "value": 9000.0, "baseline": 1200.0, "direction": "",
        "explain": "9000 volume in one minute is 7.5x the median.",
    }  # fmt: skip

    async def scenario():
        watcher, other = await open_socket(user), await open_socket(user)
        await watcher.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
        await other.send_json_to({"action": "subscribe", "symbols": ["MSFT"]})
        await receive_until(watcher, "snapshot")
        await receive_until(other, "snapshot")
        layer = get_channel_layer()
        await layer.group_send(
            symbol_group("AAPL"), {"type": "market.anomaly", "anomaly": anomaly}
        )
        frame = await receive_until(watcher, "anomaly")
        assert frame["anomaly"] == anomaly
        assert await other.receive_nothing(timeout=0.5)
        await watcher.disconnect()
        await other.disconnect()

    run(scenario)

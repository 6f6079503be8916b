"""Characters PostgreSQL cannot store, sent over the browser WebSocket: an
error frame, and the socket stays open and usable (real ASGI stack, real
Redis channel layer, real PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.streaming.test_consumers import (
    communicator,
    open_socket,
    receive_until,
    run,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def still_open(ws) -> None:
    """The socket answers and still subscribes after the refusal."""
    await ws.send_json_to({"action": "ping"})
    assert (await receive_until(ws, "pong"))["type"] == "pong"
    await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
    frame = await receive_until(ws, "snapshot")
    assert frame["missing"] == ["AAPL"]


@pytest.mark.parametrize(
    "message",
    [
        {"action": "subscribe", "symbols": ["AA\x00PL"]},
        {"action": "subscribe", "symbols": ["AAPL", "\x00"]},
        {"action": "unsubscribe", "symbols": ["AA\x00PL"]},
        {"action": "sub\x00scribe", "symbols": ["AAPL"]},
        {"action": "ping", "extra\x00": 1},
    ],
)
def test_nul_gets_an_error_frame_and_the_socket_stays_open(user, instruments, message):
    async def scenario():
        ws = await open_socket(user)
        await ws.send_json_to(message)
        error = await receive_until(ws, "error")
        assert error["code"] == "bad_message"
        assert "NUL" in error["message"]
        await still_open(ws)
        await ws.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "subscribe", "symbols": ["\\ud800"]}',
        '{"action": "subscribe", "symbols": ["AA\\udfffPL"]}',
    ],
)
def test_lone_surrogate_gets_an_error_frame_and_the_socket_stays_open(
    user, instruments, text
):
    async def scenario():
        ws = await open_socket(user)
        await ws.send_to(text_data=text)
        error = await receive_until(ws, "error")
        assert error["code"] == "bad_message"
        await still_open(ws)
        await ws.disconnect()

    run(scenario)


def test_handshake_with_nul_in_the_session_cookie_is_treated_as_logged_out(user):
    async def scenario():
        ws = communicator(b'sessionid="abcdefgh\\000ijklmnop"')
        connected, _ = await ws.connect(timeout=5)
        assert connected
        closing = await ws.receive_output(timeout=5)
        assert closing == {"type": "websocket.close", "code": 4401}

    run(scenario)


def test_a_clean_session_cookie_still_logs_in(user):
    # Guards the cookie filter against dropping good cookies.
    async def scenario():
        from asgiref.sync import sync_to_async

        cookie = await sync_to_async(session_cookie)(user)
        ws = communicator(cookie + b'; other="x\\000y"')
        connected, _ = await ws.connect(timeout=5)
        assert connected
        assert (await ws.receive_json_from(timeout=5))["type"] == "hello"
        await ws.disconnect()

    run(scenario)

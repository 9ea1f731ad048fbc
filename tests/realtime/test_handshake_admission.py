"""Past WEBSOCKET_HANDSHAKE_CONCURRENCY handshakes in progress, a new one is answered 503 at
once, before any work; a handshake stops counting once it is accepted or refused."""

import asyncio

import pytest

from realtime.admission import HandshakeAdmission


class SlowHandshakes:
    """An inner app whose handshakes wait until the test lets them finish."""

    def __init__(self) -> None:
        self.started = 0
        self.finish = asyncio.Event()

    async def __call__(self, scope, receive, send):
        await receive()
        self.started += 1
        await self.finish.wait()
        await send({"type": "websocket.accept"})


async def handshake(app, sent: list) -> None:
    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    await app({"type": "websocket", "path": "/ws/wizard-status/"}, receive, send)


async def test_a_handshake_past_the_limit_is_answered_busy_at_once(settings):
    settings.WEBSOCKET_HANDSHAKE_CONCURRENCY = 2
    inner = SlowHandshakes()
    admission = HandshakeAdmission(inner)
    first, second, third = [], [], []
    waiting = [asyncio.create_task(handshake(admission, sent)) for sent in (first, second)]
    await asyncio.sleep(0)  # both reach the inner app
    async with asyncio.timeout(1):
        await handshake(admission, third)
    assert third[0]["type"] == "websocket.http.response.start"
    assert third[0]["status"] == 503
    assert (b"retry-after", b"1") in third[0]["headers"]
    assert inner.started == 2  # the refused one cost the inner app nothing

    inner.finish.set()
    await asyncio.gather(*waiting)
    assert first == second == [{"type": "websocket.accept"}]
    assert admission.in_progress == 0
    again = []
    await handshake(admission, again)
    assert again == [{"type": "websocket.accept"}]


async def test_a_failed_handshake_frees_its_place(settings):
    settings.WEBSOCKET_HANDSHAKE_CONCURRENCY = 1

    async def failing(scope, receive, send):
        raise RuntimeError("the database is down")

    admission = HandshakeAdmission(failing)
    with pytest.raises(RuntimeError):
        await handshake(admission, [])
    assert admission.in_progress == 0

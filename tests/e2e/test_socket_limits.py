"""The per-user socket limit holds across web processes, and a dead process's sockets stop
counting once their leases end."""

import asyncio

import pytest
import websockets

from tests.e2e.clients import SOCKET_PATH, ApiUser, LiveSocket
from tests.e2e.harness import async_wait_until

pytestmark = pytest.mark.e2e

LIMIT = 3
LEASE_SECONDS = 2


@pytest.fixture(scope="module")
def two_webs(harness_factory):
    harness = harness_factory(
        WEBSOCKET_MAX_SOCKETS_PER_USER=str(LIMIT), WEBSOCKET_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    webs = [harness.add_web(), harness.add_web()]
    harness.launch(webs)
    return harness, webs


async def close_code(url: str, token: str) -> int | None:
    """None if the socket opened and got its status; else the code it was closed with."""
    async with websockets.connect(f"{url}?token={token}", open_timeout=10) as socket:
        try:
            await asyncio.wait_for(socket.recv(), 5)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code
        return None


async def test_the_limit_counts_sockets_on_every_web_process(two_webs, transactional_db):
    _, (first, second) = two_webs
    user = await ApiUser.register(first.url)
    urls = [web.ws_url(SOCKET_PATH) for web in (first, second)]
    opened = [
        await LiveSocket.open(urls[n % 2], token=user.access, label=f"s{n}") for n in range(LIMIT)
    ]
    try:
        for socket in opened:
            await socket.next_message(5)
        assert await close_code(urls[0], user.access) == 4429
        assert await close_code(urls[1], user.access) == 4429

        # One closed frees one slot, on either process.
        await opened.pop(0).close()

        async def a_slot_is_free() -> bool:
            socket = await LiveSocket.open(urls[1], token=user.access, label="new")
            try:
                message = await socket.next_message(5)
            except websockets.ConnectionClosed:
                return False
            opened.append(socket)
            return message["type"] == "wizard_status"

        await async_wait_until(a_slot_is_free, timeout=5, describe="a freed slot")
        assert await close_code(urls[0], user.access) == 4429
    finally:
        for socket in opened:
            await socket.close()
        await user.aclose()


async def test_a_killed_web_process_frees_its_users_slots(two_webs, transactional_db):
    harness, (first, second) = two_webs
    user = await ApiUser.register(second.url)
    doomed = [
        await LiveSocket.open(first.ws_url(SOCKET_PATH), token=user.access, label=f"d{n}")
        for n in range(LIMIT)
    ]
    for socket in doomed:
        await socket.next_message(5)
    url = second.ws_url(SOCKET_PATH)
    assert await close_code(url, user.access) == 4429

    harness.kill(first)  # no disconnect runs: its leases must end on their own
    try:

        async def slot_free() -> bool:
            return await close_code(url, user.access) is None

        await async_wait_until(slot_free, timeout=LEASE_SECONDS + 5, describe="leases ending")
    finally:
        harness.restart(first)
        await user.aclose()

"""Revocation across real processes: two uvicorn web processes, a Celery worker and beat.

A password change (and "end all sessions", and deactivation) closes the user's sockets on
every web process: through the outbox relay and Redis at once, and through each process's
reconciler (every 2 s here, the default) when the worker is dead and no push comes.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets

from onboarding import services, sign_ins
from outbox.models import Actor, OutboxEvent
from tests.e2e.clients import PASSWORD, SOCKET_PATH, ApiUser, LiveSocket, in_django
from tests.e2e.harness import async_wait_until

pytestmark = pytest.mark.e2e

RECONCILE_SECONDS = 2.0
# The reconciler's interval, the time its query and closes take, and a loaded machine.
WITHIN_RECONCILE = RECONCILE_SECONDS + 1.5
PUSH_SECONDS = 1.0  # a push's p99 is far below; without it the reconciler takes ~2 s
NEW_PASSWORD = "e2e-Another-Lighthouse-77"


@pytest.fixture(scope="module")
def stack(harness_factory):
    harness = harness_factory(WEBSOCKET_RECONCILE_INTERVAL=str(RECONCILE_SECONDS))
    web, worker, beat = harness.start_stack(web=2)
    return harness, web, worker, beat


@pytest.fixture
async def user(stack, transactional_db) -> AsyncIterator[ApiUser]:
    _, web, _, _ = stack
    user = await ApiUser.register(web[0].url)
    yield user
    await user.aclose()


async def socket_on(web, token: str, label: str) -> LiveSocket:
    socket = await LiveSocket.open(web.ws_url(SOCKET_PATH), token=token, label=label)
    first = await socket.next_message(5)
    assert first["type"] == "wizard_status"
    return socket


async def close_code(socket: LiveSocket, timeout: float) -> int:
    """The code the server closed the socket with, within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await socket.connection.recv()
    except websockets.ConnectionClosed:
        return socket.connection.close_code
    except TimeoutError:
        raise AssertionError(f"{socket.label} still open after {timeout} s") from None


async def still_open(socket: LiveSocket) -> None:
    await socket.connection.send('{"type": "ping"}')
    assert (await socket.next_message(5))["type"] == "pong"


async def change_password(user: ApiUser) -> str:
    response = await user.http.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return response.json()["access"]


async def no_pending_rows() -> bool:
    return await in_django(lambda: OutboxEvent.objects.pending().count()) == 0


async def test_a_password_change_closes_the_users_sockets_on_both_web_processes(stack, user):
    _, web, _, _ = stack
    old = [await socket_on(process, user.access, f"old@{process.name}") for process in web]

    new_access = await change_password(user)

    for socket in old:
        assert await close_code(socket, PUSH_SECONDS) == 4401, socket.label
    fresh = [await socket_on(process, new_access, f"new@{process.name}") for process in web]
    await async_wait_until(no_pending_rows, 10, describe="the revocation relayed")
    for socket in fresh:
        await still_open(socket)
        await socket.close()


async def test_with_the_worker_dead_the_reconcilers_close_them_within_their_interval(stack, user):
    harness, web, worker, _ = stack
    old = [await socket_on(process, user.access, f"old@{process.name}") for process in web]
    harness.kill(worker)
    try:
        new_access = await change_password(user)
        fresh = await socket_on(web[1], new_access, "new@web1")

        for socket in old:
            assert await close_code(socket, WITHIN_RECONCILE) == 4401, socket.label
        assert not await no_pending_rows()  # nothing relayed it: the reconcilers did
    finally:
        harness.restart(worker)
    # The late push of the same revocation leaves the new credentials' socket open.
    await async_wait_until(no_pending_rows, 15, describe="the revocation relayed late")
    await still_open(fresh)
    await fresh.close()


async def test_ending_all_sessions_with_the_worker_dead_closes_them_too(stack, user):
    harness, web, worker, _ = stack
    old = [await socket_on(process, user.access, f"old@{process.name}") for process in web]
    harness.kill(worker)
    try:
        await in_django(sign_ins.user_sessions_end, user_id=user.id, actor=Actor.system())
        for socket in old:
            assert await close_code(socket, WITHIN_RECONCILE) == 4401, socket.label
    finally:
        harness.restart(worker)
    await async_wait_until(no_pending_rows, 15, describe="the revocation relayed late")


async def test_a_deactivation_closes_them_with_4403_on_both_web_processes(stack, user):
    _, web, _, _ = stack
    old = [await socket_on(process, user.access, f"old@{process.name}") for process in web]

    await in_django(services.user_set_active, user_id=user.id, is_active=False)

    for socket in old:
        assert await close_code(socket, PUSH_SECONDS) == 4403, socket.label

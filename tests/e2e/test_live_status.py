"""Live status across real processes: two uvicorn web processes, a Celery worker and beat.

Users are made through the REST API of a running web process and sockets are real
`websockets` clients, so every change travels the production path: HTTP write and outbox row
in one transaction, nudge, relay in the worker, Redis pub/sub, consumer, socket.

The web processes run with the per-process reconciler effectively off: every status a socket
sees after its first message then came through the outbox relay and the channel layer. With
the reconciler on (every 2 s) a dead push path, e.g. an idle Redis subscription killed by a
socket timeout, would still look healthy to these tests.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from outbox.models import OutboxEvent
from tests.e2e.clients import (
    SOCKET_PATH,
    ApiUser,
    LiveSocket,
    content,
    expected_status,
    status_body,
)
from tests.e2e.harness import Harness, ManagedProcess, async_wait_until

pytestmark = pytest.mark.e2e

CLAIM_TIMEOUT_SECONDS = 3  # a killed relay's claim expires this soon (default 10 s)
CONVERGENCE_SECONDS = 5.0  # the contract: every open socket converges within 5 s
PUSH_SECONDS = 5.0  # generous for a push whose p99 is 100 ms; the reconciler is off
FIRST_MESSAGE_SECONDS = 5.0

# Every socket any test opened, to check ordering over the whole module.
opened_sockets: list[LiveSocket] = []


@dataclass
class Stack:
    harness: Harness
    web: list[ManagedProcess]
    worker: ManagedProcess
    beat: ManagedProcess


@pytest.fixture(scope="module")
def stack(harness_factory) -> Stack:
    harness = harness_factory(
        OUTBOX_CLAIM_TIMEOUT=str(CLAIM_TIMEOUT_SECONDS),
        WEBSOCKET_RECONCILE_INTERVAL="3600",
    )
    web, worker, beat = harness.start_stack(web=2)
    return Stack(harness=harness, web=web, worker=worker, beat=beat)


@pytest.fixture
async def users(stack, transactional_db) -> AsyncIterator[Callable[[], Awaitable[ApiUser]]]:
    """Register users through the first web process (committed: every process sees them)."""
    registered: list[ApiUser] = []

    async def register() -> ApiUser:
        user = await ApiUser.register(stack.web[0].url)
        registered.append(user)
        return user

    yield register
    for user in registered:
        await user.aclose()


def versions_going_backwards(sockets: list[LiveSocket]) -> dict[str, list[int]]:
    return {
        socket.label: socket.versions
        for socket in sockets
        if socket.versions != sorted(socket.versions)
    }


@pytest.fixture
async def sockets(stack) -> AsyncIterator[Callable[..., Awaitable[LiveSocket]]]:
    """Open sockets with a user's access token; afterwards, check none went back in version."""
    opened: list[LiveSocket] = []

    async def open_socket(web: ManagedProcess, user: ApiUser, name: str) -> LiveSocket:
        label = f"{name}@{web.name}#{len(opened_sockets)}"  # unique across the module
        socket = await LiveSocket.open(web.ws_url(SOCKET_PATH), token=user.access, label=label)
        opened.append(socket)
        opened_sockets.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        await socket.close()
    assert versions_going_backwards(opened) == {}
    assert [m for s in opened for m in s.messages if m["type"] != "wizard_status"] == []


def _pending_outbox_rows() -> int:
    try:
        return OutboxEvent.objects.pending().count()
    finally:
        connections.close_all()  # this thread's connection: no open session at db teardown


pending_outbox_rows = sync_to_async(_pending_outbox_rows, thread_sensitive=False)


async def no_pending_rows() -> bool:
    return await pending_outbox_rows() == 0


async def first_statuses(*sockets: LiveSocket) -> list[dict]:
    return [await socket.next_message(FIRST_MESSAGE_SECONDS) for socket in sockets]


async def test_profile_patch_reaches_every_socket_of_that_user_and_no_other(users, sockets, stack):
    ada, bob = await users(), await users()
    web = stack.web[0]
    ada_tab, ada_phone = await sockets(web, ada, "ada-tab"), await sockets(web, ada, "ada-phone")
    bob_tab = await sockets(web, bob, "bob-tab")

    initial = await ada.wizard_status()
    v0 = initial["version"]
    assert status_body(initial) == expected_status(version=v0, met=set())
    assert [status_body(m) for m in await first_statuses(ada_tab, ada_phone)] == [
        expected_status(version=v0, met=set())
    ] * 2
    [bob_first] = await first_statuses(bob_tab)
    assert status_body(bob_first) == status_body(await bob.wizard_status())

    await ada.patch_profile(first_name="Ada")

    after = await ada.wizard_status()
    assert after["version"] > v0
    assert status_body(after) == expected_status(version=after["version"], met={"first_name"})
    pushed = [await socket.next_message(PUSH_SECONDS) for socket in (ada_tab, ada_phone)]
    assert [status_body(m) for m in pushed] == [status_body(after)] * 2
    assert pushed[0]["details"]["first_name"] is True
    await bob_tab.expect_silence(1.5)
    assert [len(ada_tab.messages), len(ada_phone.messages), len(bob_tab.messages)] == [2, 2, 1]


async def test_push_reaches_sockets_on_both_web_processes(users, sockets, stack):
    ada = await users()
    on_first = await sockets(stack.web[0], ada, "ada-a")
    on_second = await sockets(stack.web[1], ada, "ada-b")
    initial = await ada.wizard_status()
    assert [status_body(m) for m in await first_statuses(on_first, on_second)] == [
        status_body(initial)
    ] * 2

    await ada.patch_profile(last_name="Lovelace")

    after = await ada.wizard_status()
    assert status_body(after) == expected_status(version=after["version"], met={"last_name"})
    pushed = [await socket.next_message(PUSH_SECONDS) for socket in (on_first, on_second)]
    assert [status_body(m) for m in pushed] == [status_body(after)] * 2


async def test_sockets_converge_after_the_worker_is_killed_and_restarted(users, sockets, stack):
    ada = await users()
    [business_type, *_] = await ada.business_types()
    on_first = await sockets(stack.web[0], ada, "ada-a")
    on_second = await sockets(stack.web[1], ada, "ada-b")
    await first_statuses(on_first, on_second)

    await ada.patch_profile(first_name="Ada")  # the live worker relays this one
    for socket in (on_first, on_second):
        await socket.wait_for_status(lambda s: s["details"]["first_name"], PUSH_SECONDS)
    # Kill an idle worker, not one halfway through relaying the row above.
    await async_wait_until(no_pending_rows, 10, describe="no pending outbox row")

    stack.harness.kill(stack.worker)
    assert stack.worker.alive is False
    await ada.patch_profile(last_name="Lovelace")
    await ada.patch_profile(phone_number="+14155552671")
    await ada.patch_profile(business_type=business_type)
    await ada.patch_profile(first_name="")
    assert await pending_outbox_rows() == 4  # nothing relays them while the worker is down

    stack.harness.restart(stack.worker)
    restarted = time.monotonic()

    current = await ada.wizard_status()
    assert status_body(current) == expected_status(
        version=current["version"], met={"last_name", "phone_number", "business_type"}
    )
    for socket in (on_first, on_second):
        remaining = CONVERGENCE_SECONDS - (time.monotonic() - restarted)
        latest = await socket.wait_for_status(
            lambda s: status_body(s) == status_body(current), remaining
        )
        assert status_body(latest) == status_body(current)
    await async_wait_until(
        no_pending_rows, CLAIM_TIMEOUT_SECONDS + 12, describe="no pending outbox row"
    )


async def test_reconnecting_socket_gets_the_current_status_first(users, sockets, stack):
    ada = await users()
    [business_type, *_] = await ada.business_types()
    before = await sockets(stack.web[0], ada, "ada-before")
    [first] = await first_statuses(before)
    await before.close()

    await ada.patch_profile(business_type=business_type)

    current = await ada.wizard_status()
    assert status_body(current) == expected_status(
        version=current["version"], met={"business_type"}
    )
    after = await sockets(stack.web[1], ada, "ada-after")
    [reconnected_first] = await first_statuses(after)
    assert status_body(reconnected_first) == status_body(current)
    assert reconnected_first["version"] > first["version"]


async def test_socket_idle_for_30_seconds_still_gets_the_next_push(users, sockets, stack):
    ada = await users()
    idle = [await sockets(web, ada, f"ada-idle-{web.name}") for web in stack.web]
    await first_statuses(*idle)

    await asyncio.gather(*(socket.expect_silence(30) for socket in idle))
    await ada.patch_profile(phone_number="+14155552671")

    after = await ada.wizard_status()
    assert status_body(after) == expected_status(version=after["version"], met={"phone_number"})
    pushed = [await socket.next_message(PUSH_SECONDS) for socket in idle]
    assert [status_body(m) for m in pushed] == [status_body(after)] * 2


async def test_versions_never_go_backwards_on_any_socket(users, sockets, stack):
    """Stable sockets on both processes while the status flips and other sockets churn."""
    ada = await users()
    stable = [await sockets(web, ada, f"ada-stable-{web.name}") for web in stack.web]
    await first_statuses(*stable)

    await ada.patch_profile(last_name="Lovelace")
    for flip in range(13):
        await ada.patch_profile(first_name="" if flip % 2 else f"Ada {flip}")
        if flip % 3 == 0:
            churn = await sockets(stack.web[flip % 2], ada, f"ada-churn-{flip}")
            await first_statuses(churn)
            await churn.close()

    current = await ada.wizard_status()
    assert status_body(current) == expected_status(
        version=current["version"], met={"first_name", "last_name"}
    )
    for socket in stable:
        await socket.wait_for_status(lambda s: content(s) == content(current), CONVERGENCE_SECONDS)
    assert all(socket.versions for socket in opened_sockets)
    assert versions_going_backwards(opened_sockets) == {}

"""Generated hostile frames against the wizard-status socket, and clients that stop reading.

Every socket goes through the real `config.asgi.application` and the real Redis pub/sub
layer. Hypothesis drives one socket through thousands of frames — random text and bytes,
JSON that is not an object, wrong types and unknown, underscore or dotted values of `type`,
nesting deeper than the parser recurses, frames near and over the 4096-byte limit, refresh
floods — and every frame must get exactly the contract's answer: an `error` with its code,
a `pong`, a `wizard_status`, or a close with 1009 for an oversized frame. Nothing else is
ever sent, and after every frame that did not close it the socket still answers a ping.

The refresh limit keeps its count (10) with a window of an hour here, so which refresh is
answered and which is rate limited does not depend on how fast the machine runs the test.

Slow readers, in process: `StalledClient` is a client whose connection stops draining, so
the server's ASGI `send` waits, as uvicorn's does when the TCP buffers toward a client that
does not read are full (it awaits the transport becoming writable).

Such a socket must cost a bounded amount of memory and never hold up the reconciler or
anyone else's socket. The last test checks sockets that never read across real processes,
with the web process's resident memory.
"""

import asyncio
import base64
import json
import logging
import os
import socket
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from config.asgi import application
from onboarding.services import profile_update
from realtime.broadcast import broadcast_to_users, status_event
from realtime.reconcile import registry
from tests.e2e.clients import SOCKET_PATH, ApiUser, LiveSocket, content
from tests.e2e.harness import ManagedProcess, async_wait_until
from tests.realtime.conftest import (
    BINARY,
    NOT_A_MESSAGE,
    NOT_JSON,
    PROMPT,
    TIMESTAMP,
    UNKNOWN_TYPE,
    WS_PATH,
    access_token,
    closed,
    connect,
    current_status,
    db_call,
    receive_close,
    receive_json,
    without_timestamp,
)

pytestmark = [pytest.mark.hostile, pytest.mark.django_db(transaction=True)]

MAX_FRAME_BYTES = 4096
MAX_SOCKETS_PER_USER = 20
REFRESHES_PER_WINDOW = 10
WINDOW_SECONDS = 3600

# Hypothesis runs many examples inside one test call: the socket (a function-scoped
# fixture) lives across them on purpose, and the model below carries its state.
FUZZ = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}


# Frames and what the contract answers to each


@dataclass(frozen=True)
class Frame:
    text: str | None = None
    data: bytes | None = None
    # Nesting deep enough that the parser may give up (invalid_json) or not, depending on
    # the stack it starts from and the recursion limit (which Hypothesis raises while it
    # runs a test): the kind the frame has when parsed, where the parser does not give up.
    deep_kind: str | None = None

    def __repr__(self) -> str:
        body = self.text if self.text is not None else self.data
        shown = repr(body) if len(body) <= 80 else f"{body[:60]!r}... ({len(body)} long)"
        return f"Frame({'text' if self.text is not None else 'bytes'}={shown})"


TOO_BIG, BAD_JSON, BAD_MESSAGE, BAD_BINARY, UNKNOWN, PING, REFRESH = (
    "too_big",
    "invalid_json",
    "invalid_message",
    "binary",
    "unknown_type",
    "ping",
    "refresh",
)


def classify(frame: Frame) -> str:
    """The contract's answer to a frame (section 2), written from the contract."""
    if frame.data is not None:
        return TOO_BIG if len(frame.data) > MAX_FRAME_BYTES else BAD_BINARY
    if len(frame.text.encode()) > MAX_FRAME_BYTES:
        return TOO_BIG
    try:
        message = json.loads(frame.text)
    except (ValueError, RecursionError):
        return BAD_JSON
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return BAD_MESSAGE
    return {"ping": PING, "refresh": REFRESH}.get(message["type"], UNKNOWN)


# What a browser can put in a text frame: UTF-8 on the wire, so no lone surrogates.
wire_text = st.characters(exclude_categories=("Cs",))
keys = st.text(wire_text, max_size=12).filter(lambda key: key != "type")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(wire_text, max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=10,
)
extras = st.dictionaries(keys, json_values, max_size=3)
HANDLER_NAMES = [
    "wizard_status",
    "wizard.status",
    "wizard_account_deactivated",
    "wizard.account_deactivated",
    "websocket.receive",
    "websocket_receive",
    "websocket.disconnect",
    "websocket.close",
    "websocket_connect",
    "send_error",
    "send_fresh_status",
    "deliver_status",
    "on_refresh",
    "join_group",
    "disconnect",
    "close",
    "receive",
    "dispatch",
    "__init__",
    "__class__",
    "_private",
    "PING",
    "Refresh",
    " ping",
    "refresh ",
    "ping\x00",
    "",
]
identifier = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=10)
unknown_types = st.one_of(
    st.sampled_from(HANDLER_NAMES),
    st.text(wire_text, max_size=30),
    identifier.map(lambda name: f"_{name}"),
    st.lists(identifier, min_size=2, max_size=4).map(".".join),
).filter(lambda value: value not in ("ping", "refresh"))
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.sampled_from(["ping", "refresh"]), max_size=2),
    st.dictionaries(st.sampled_from(["ping", "refresh", "type"]), scalars, max_size=2),
)


def as_frame(value: Any, ascii_only: bool = True) -> Frame:
    return Frame(text=json.dumps(value, ensure_ascii=ascii_only))


def typed(kind: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(lambda value, more: {**more, "type": value}, kind, extras)


def padded(type_value: Any, size: int, filler: str) -> Frame:
    """An object with this `type`, padded to exactly `size` UTF-8 bytes where it can be."""
    frame = json.dumps({"type": type_value, "pad": ""}, ensure_ascii=False)
    room = max(size - len(frame.encode()), 0)
    width = len(filler.encode())
    pad = filler * (room // width) + "x" * (room % width)
    return Frame(text=json.dumps({"type": type_value, "pad": pad}, ensure_ascii=False))


SAFE_DEPTH = 400  # parsed without a RecursionError from any stack a test runs on


def nested(depth: int, opener: str, closer: str, inside_ping: bool, balanced: bool) -> Frame:
    body = opener * depth + "0" + (closer * depth if balanced else closer * (depth // 2))
    text = '{"type": "ping", "nested": ' + body + "}" if inside_ping else body
    parsed_kind = BAD_JSON if not balanced else PING if inside_ping else BAD_MESSAGE
    return Frame(text=text, deep_kind=parsed_kind if depth > SAFE_DEPTH else None)


size_near_limit = st.integers(MAX_FRAME_BYTES - 64, MAX_FRAME_BYTES + 64)
frames = st.one_of(
    st.text(wire_text, max_size=200).map(lambda text: Frame(text=text)),
    st.binary(max_size=200).map(lambda data: Frame(data=data)),
    size_near_limit.map(
        lambda size: Frame(data=bytes(range(256)) * (size // 256) + b"\x00" * (size % 256))
    ),
    st.builds(
        as_frame, json_values.filter(lambda value: not isinstance(value, dict)), st.booleans()
    ),
    st.builds(as_frame, typed(wrong_types), st.booleans()),
    st.builds(as_frame, typed(unknown_types), st.booleans()),
    st.builds(as_frame, typed(st.sampled_from(["ping", "refresh"])), st.booleans()),
    st.builds(
        padded,
        st.sampled_from(["ping", "refresh", "_ping", 7]),
        size_near_limit,
        st.sampled_from(["x", "\u00e9", "\u20ac", "\U0001f600"]),
    ),
    st.builds(
        nested,
        st.integers(1, SAFE_DEPTH) | st.integers(SAFE_DEPTH + 1, 3000),
        st.just("["),
        st.just("]"),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        nested, st.integers(1, 700), st.just('{"a": '), st.just("}"), st.booleans(), st.booleans()
    ),
)
refresh_floods = st.integers(1, 25).map(lambda count: [Frame(text='{"type": "refresh"}')] * count)
single = frames.map(lambda frame: [frame])
scripts = st.lists(st.one_of(single, single, single, refresh_floods), min_size=5, max_size=20).map(
    lambda parts: [frame for part in parts for frame in part]
)


# One socket, driven frame by frame against the model


@dataclass
class RefreshBudget:
    """The user's refreshes: one budget for all their sockets, kept across reconnects."""

    started_at: float = field(default_factory=time.monotonic)
    answered: int = 0  # refreshes answered with a status
    in_flight: int = 0  # sent, not yet answered


@dataclass
class ModelledSocket:
    """A socket of one user whose every answer is checked against the contract.

    Lockstep: each frame is answered before the next is sent, so an extra or missing
    message shows at the frame that caused it. A 1009 close is checked and a fresh socket
    takes over; the refresh budget is the user's, shared by all their sockets.
    """

    open_socket: Callable
    status: dict
    budget: RefreshBudget
    communicator: Any = None

    async def open(self) -> None:
        self.communicator = self.open_socket()
        assert await connect(self.communicator) is True
        await self.expect_status(await receive_json(self.communicator))

    async def expect_status(self, message: dict) -> None:
        assert without_timestamp(message) == self.status
        assert TIMESTAMP.fullmatch(message["timestamp"]), message

    async def exchange(self, frame: Frame) -> None:
        kind = classify(frame)
        # send_input, not send_to: the communicator refuses empty frames, a client may not.
        if frame.data is not None:
            await self.communicator.send_input({"type": "websocket.receive", "bytes": frame.data})
        else:
            await self.communicator.send_input({"type": "websocket.receive", "text": frame.text})
        if kind == TOO_BIG:
            assert await receive_close(self.communicator) == closed(1009), frame
            await self.communicator.disconnect(timeout=PROMPT)
            await self.open()
            return
        if kind == REFRESH:
            self.budget.in_flight += 1
        answer = await receive_json(self.communicator)
        if kind == REFRESH:
            self.budget.in_flight -= 1
        if frame.deep_kind is not None:
            if answer == NOT_JSON:  # the parser gave up: also a contract answer
                return
            kind = frame.deep_kind
        if kind == PING:
            assert answer == {"type": "pong", "timestamp": answer["timestamp"]}, frame
            assert TIMESTAMP.fullmatch(answer["timestamp"])
        elif kind == REFRESH and answer["type"] == "wizard_status":
            self.budget.answered += 1
            assert self.budget.answered <= REFRESHES_PER_WINDOW, frame
            await self.expect_status(answer)
        elif kind == REFRESH:
            # Refused only once the user's budget is spent, counting refreshes of other
            # sockets still waiting for their answers.
            assert self.budget.answered + self.budget.in_flight >= REFRESHES_PER_WINDOW, frame
            retry_after = answer.get("retry_after")
            assert answer == {
                "type": "error",
                "code": "rate_limited",
                "detail": "Too many refreshes; wait and retry.",
                "retry_after": retry_after,
            }
            elapsed = time.monotonic() - self.budget.started_at
            assert type(retry_after) is int
            assert WINDOW_SECONDS - elapsed - 1 <= retry_after <= WINDOW_SECONDS
        else:
            expected = {
                BAD_JSON: NOT_JSON,
                BAD_MESSAGE: NOT_A_MESSAGE,
                BAD_BINARY: BINARY,
                UNKNOWN: UNKNOWN_TYPE,
            }[kind]
            assert answer == expected, frame

    async def still_answers(self) -> None:
        await self.communicator.send_json_to({"type": "ping"})
        answer = await receive_json(self.communicator)
        assert answer == {"type": "pong", "timestamp": answer["timestamp"]}
        assert await self.communicator.receive_nothing(timeout=0.01) is True


@pytest.fixture
def socket_limits(settings):
    settings.WEBSOCKET_REFRESH_LIMIT = f"{REFRESHES_PER_WINDOW}/{WINDOW_SECONDS}s"
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = MAX_SOCKETS_PER_USER
    # The model answers every other frame; the per-socket bound has a test of its own.
    settings.WEBSOCKET_MESSAGE_LIMIT = "1000000/1h"


@pytest.fixture
def refresh_budget(user) -> RefreshBudget:
    """Lives as long as the user: hypothesis runs every example of a test with one user."""
    return RefreshBudget()


@pytest.fixture
async def modelled(user, sockets, socket_limits, refresh_budget) -> ModelledSocket:
    token = access_token(user)
    socket_ = ModelledSocket(
        open_socket=lambda: sockets(f"token={token}"),
        status=await current_status(user.pk),
        budget=refresh_budget,
    )
    await socket_.open()
    return socket_


def test_the_model_knows_the_contracts_answers():
    assert [
        classify(Frame(text=text))
        for text in (
            '{"type": "ping"}',
            '{"type": "refresh", "x": 1}',
            '{"type": "a.b"}',
            '{"type": 1}',
            "[]",
            "{",
            "[" * 2000 + "]" * 2000,
            "x" * 4097,
            "\u00e9" * 2049,
        )
    ] == [PING, REFRESH, UNKNOWN, BAD_MESSAGE, BAD_MESSAGE, BAD_JSON, BAD_JSON, TOO_BIG, TOO_BIG]
    assert classify(Frame(data=b"x" * 4096)) == BAD_BINARY
    assert classify(Frame(data=b"x" * 4097)) == TOO_BIG


@hypothesis_settings(max_examples=250, **FUZZ)
@given(script=scripts)
async def test_every_generated_frame_gets_exactly_the_contracts_answer(modelled, script):
    for frame in script:
        await modelled.exchange(frame)
    await modelled.still_answers()


# Many sockets of one user, all flooded at once


@hypothesis_settings(max_examples=6, **FUZZ)
@given(
    scripts_per_socket=st.lists(
        scripts, min_size=MAX_SOCKETS_PER_USER, max_size=MAX_SOCKETS_PER_USER
    )
)
async def test_floods_on_every_socket_a_user_may_open_are_answered_per_socket(
    user, sockets, socket_limits, refresh_budget, scripts_per_socket
):
    token = access_token(user)
    status = await current_status(user.pk)
    opened = [
        ModelledSocket(
            open_socket=lambda: sockets(f"token={token}"), status=status, budget=refresh_budget
        )
        for _ in scripts_per_socket
    ]
    await asyncio.gather(*(socket_.open() for socket_ in opened))
    assert registry.count(user.pk) == MAX_SOCKETS_PER_USER

    one_too_many = sockets(f"token={token}")
    assert await connect(one_too_many) is True
    assert await receive_close(one_too_many) == closed(4429)
    await one_too_many.disconnect()

    async def run(socket_: ModelledSocket, script: list[Frame]) -> None:
        for frame in script:
            await socket_.exchange(frame)
        await socket_.still_answers()

    try:
        await asyncio.gather(
            *(run(s, script) for s, script in zip(opened, scripts_per_socket, strict=True))
        )
    finally:  # also when an example fails: the next one needs every slot again
        for socket_ in opened:
            await socket_.communicator.disconnect()
    assert registry.count(user.pk) == 0


# Clients that stop reading


class StalledClient:
    """A socket client whose connection stops draining after its first `reads` frames.

    From then on the server's ASGI `send` waits, as uvicorn's does once the TCP buffers
    toward a client that does not read are full (it awaits the transport being writable).
    `resume()` is the client reading again: what the server had sent or kept for it arrives.
    """

    def __init__(self, user, *, reads: int = 1) -> None:
        query = f"token={access_token(user)}".encode()
        self.scope = {
            "type": "websocket",
            "path": WS_PATH,
            "raw_path": WS_PATH.encode(),
            "query_string": query,
            "headers": [],
            "subprotocols": [],
        }
        self.reads = reads
        self.frames: list[dict] = []
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.draining = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def send(self, message: dict) -> None:
        if message["type"] == "websocket.send" and len(self.frames) >= self.reads:
            await self.draining.wait()
        if message["type"] == "websocket.send":
            self.frames.append(json.loads(message["text"]))

    async def open(self) -> None:
        self.task = asyncio.create_task(application(self.scope, self.receive, self.send))
        await self.inbox.put({"type": "websocket.connect"})
        await async_wait_until(self.got_first_frame, PROMPT, describe="the first status")

    async def got_first_frame(self) -> bool:
        return len(self.frames) >= 1

    async def send_frames(self, text: str, count: int) -> None:
        for _ in range(count):
            await self.inbox.put({"type": "websocket.receive", "text": text})

    def resume(self) -> None:
        self.draining.set()

    async def finish(self) -> None:
        self.resume()
        if not self.task.done():
            await self.inbox.put({"type": "websocket.disconnect", "code": 1001})
        await asyncio.wait_for(self.task, PROMPT)


@pytest.fixture
async def stalled_clients():
    made: list[StalledClient] = []

    def make(user, **options) -> StalledClient:
        client = StalledClient(user, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if client.task is not None:
            await client.finish()


async def wait_idle(predicate: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return predicate()

    await async_wait_until(holds, PROMPT, describe="the consumer to catch up")


async def test_a_client_that_stops_reading_does_not_hold_up_the_reconciler(
    user, other_user, sockets, stalled_clients
):
    """Regression: the reconciler awaited each socket's send in turn, so one client that
    stopped reading stopped convergence for every socket of the process."""
    stalled = stalled_clients(user)
    await stalled.open()
    await stalled.send_frames('{"type": "ping"}', 1)  # its pong waits for the client
    bystander = sockets(f"token={access_token(other_user)}")
    assert await connect(bystander) is True
    await receive_json(bystander)

    # Both users change; no relay runs, only the reconciler can bring the news.
    await db_call(profile_update)(user_id=user.pk, first_name="Stalled")
    await db_call(profile_update)(user_id=other_user.pk, first_name="Bystander")

    await asyncio.wait_for(registry.reconcile(), PROMPT)
    pushed = await receive_json(bystander)
    assert without_timestamp(pushed) == await current_status(other_user.pk)

    stalled.resume()
    await wait_idle(lambda: len(stalled.frames) == 3)
    assert [frame["type"] for frame in stalled.frames] == ["wizard_status", "pong", "wizard_status"]
    assert without_timestamp(stalled.frames[2]) == await current_status(user.pk)


async def test_pushes_to_a_client_that_stopped_reading_are_not_kept_one_by_one(
    user, stalled_clients, caplog
):
    """Regression: every push to a socket whose client stopped reading stayed queued in the
    process (in the channel layer, behind the blocked send), without bound. Only the newest
    status matters to a client; the server keeps that one."""
    caplog.set_level(logging.INFO, logger="realtime.consumers")
    stalled = stalled_clients(user)
    await stalled.open()
    await stalled.send_frames('{"type": "ping"}', 1)
    first = stalled.frames[0]
    pushes = []
    for n in range(1, 301):  # each differs from the one before
        details = {**first["details"], "last_name": n % 2 == 1}
        pushes.append(dict(first, version=first["version"] + n, details=details))
    for status in pushes:
        await db_call(broadcast_to_users)({user.pk: [status_event(status)]})

    # The consumer takes every push while its client reads nothing ...
    taken = f"Wizard status updated for user {user.pk}"

    async def all_taken() -> bool:
        return [r.getMessage() for r in caplog.records].count(taken) == len(pushes)

    await async_wait_until(all_taken, PROMPT, describe="every push taken by the consumer")
    # ... and what reaches the client once it reads again is the pong and the newest status.
    stalled.resume()
    await wait_idle(lambda: len(stalled.frames) >= 3)
    pong = stalled.frames[1]
    assert stalled.frames == [first, {"type": "pong", "timestamp": pong["timestamp"]}, pushes[-1]]


async def test_a_client_that_floods_frames_without_reading_is_let_go(
    user, sockets, stalled_clients, caplog, settings
):
    """Regression: its answers piled up behind the blocked send, and the socket, its
    registry entry and its group subscription stayed as long as the connection did. Past
    a bound of unread answers the server now lets the socket go (the connection ends)."""
    settings.WEBSOCKET_MESSAGE_LIMIT = "1000000/1h"  # the bound of unread answers, alone
    stalled = stalled_clients(user)
    await stalled.open()
    await stalled.send_frames('{"type": "ping"}', 1000)

    await asyncio.wait_for(asyncio.shield(stalled.task), PROMPT)
    assert registry.count(user.pk) == 0
    assert f"User {user.pk} socket does not read its answers; letting it go" in caplog.messages
    assert len(stalled.frames) == 1  # the first status; nothing was written after it
    # Its slot is free again.
    replacement = sockets(f"token={access_token(user)}")
    assert await connect(replacement) is True
    assert without_timestamp(await receive_json(replacement)) == await current_status(user.pk)


# Slow readers across real processes
#
# The kernel buffers up to `net.ipv4.tcp_wmem` (4 MB here) toward each client before uvicorn
# pauses writing, so within this test's time the sockets below are slow, not yet stalled:
# the stalled case is the in-process tests above. This one checks what a deployment sees.


SILENT_READERS = 17  # never read and never send: pushes pile up toward them
FLOODING_READERS = 2  # never read, and send pings
FLOOD_PINGS = 3_000
WRITES = 120
RSS_GROWTH_LIMIT_KB = 50 * 1024
CONVERGENCE_SECONDS = 5.0  # the contract: every open socket converges within 5 s


def _masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame (clients must mask), for payloads under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def never_reading_socket(web: ManagedProcess, token: str, *, pings: int = 0):
    """A raw client that completes the handshake and then never reads again (with a small
    receive buffer, so what the server writes backs up toward it)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", web.port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {SOCKET_PATH}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROMPT)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.transport.pause_reading()
    writer.write(_masked_text_frame(b'{"type": "ping"}') * pings)
    return writer


class ReadingSocket:
    """A `websockets` client that reads all the time, in the background."""

    def __init__(self, live: LiveSocket) -> None:
        self.live = live
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            await self.live.next_message(3600)

    async def until(self, predicate: Callable[[dict], bool], timeout: float) -> dict:
        async def latest_matches() -> bool:
            return self.live.latest is not None and predicate(self.live.latest)

        await async_wait_until(latest_matches, timeout, describe=f"{self.live.label} status")
        return self.live.latest

    async def close(self) -> None:
        self.task.cancel()
        await self.live.close()


def resident_kb(process: ManagedProcess) -> int:
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {process.name}")


async def open_sockets_metric(web: ManagedProcess, http) -> float:
    lines = (await http.get(web.url + "/metrics")).text.splitlines()
    [value] = [line.split()[1] for line in lines if line.startswith("wizard_socket_connections ")]
    return float(value)


@pytest.fixture(scope="module")
def live_stack(harness_factory):
    harness = harness_factory(WEBSOCKET_RECONCILE_INTERVAL="1")
    [web], worker, _beat = harness.start_stack(web=1)
    return harness, web, worker


@pytest.mark.e2e
async def test_sockets_that_never_read_cost_bounded_memory_and_hold_up_no_one(
    live_stack, transactional_db
):
    harness, web, worker = live_stack
    writer_user, bystander = await ApiUser.register(web.url), await ApiUser.register(web.url)
    url = web.ws_url(SOCKET_PATH)
    watch = ReadingSocket(await LiveSocket.open(url, token=writer_user.access, label="watch"))
    other = ReadingSocket(await LiveSocket.open(url, token=bystander.access, label="other"))
    for n in range(10):  # warm the process up before the baseline
        await writer_user.patch_profile(first_name="x" if n % 2 else "")
    baseline = resident_kb(web)

    # Every socket the user may open on this process: one reads, the others never do.
    never_reading = [
        await never_reading_socket(web, writer_user.access, pings=FLOOD_PINGS if n < 2 else 0)
        for n in range(SILENT_READERS + FLOODING_READERS)
    ]
    try:
        assert await open_sockets_metric(web, writer_user.http) == 2 + len(never_reading)

        async def write(offset: int) -> None:
            for n in range(offset, WRITES, 4):
                await writer_user.patch_profile(first_name="x" if n % 2 else "")

        await asyncio.gather(*(write(offset) for offset in range(4)))
        await writer_user.patch_profile(last_name="Done")  # a status none of the writes had
        final = await writer_user.wizard_status()
        await watch.until(lambda s: content(s) == content(final), CONVERGENCE_SECONDS)
        await bystander.patch_profile(last_name="Pushed")
        pushed = await bystander.wizard_status()
        await other.until(lambda s: content(s) == content(pushed), CONVERGENCE_SECONDS)

        growth = resident_kb(web) - baseline
        assert growth < RSS_GROWTH_LIMIT_KB, f"web RSS grew by {growth} kB"

        # With no worker only the reconciler brings news, past the sockets that do not read.
        harness.kill(worker)
        await bystander.patch_profile(first_name="Reconciled")
        current = await bystander.wizard_status()
        await other.until(lambda s: content(s) == content(current), CONVERGENCE_SECONDS)
        assert web.alive is True
        assert await open_sockets_metric(web, writer_user.http) == 2 + len(never_reading)
    finally:
        for raw in never_reading:
            raw.transport.abort()
        await watch.close()
        await other.close()
        await writer_user.aclose()
        await bystander.aclose()

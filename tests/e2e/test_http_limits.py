"""What the web process accepts: oversized headers are refused, slow clients are timed out.

A real uvicorn started from the Procfile's web line (config/http_server.py), with short
deadlines set through the environment, and raw sockets, so that a test controls every byte
and when it is sent. Every wait is a read with a deadline: a test that expects the server to
stay quiet reads for that long and fails on any byte or a close.
"""

import asyncio
import contextlib
import re
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from tests.e2e.clients import SOCKET_PATH, ApiUser, LiveSocket
from tests.e2e.harness import ManagedProcess

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_HEADER_BYTES = 32 * 1024  # the default
# How late past a deadline the server may close (its timer, a loaded machine), and how early
# (timer resolution).
MARGIN = 2.0
EARLY = 0.05
ANSWER_SECONDS = 5.0  # for an answer that is due at once

# The many-connections test: each web worker starts with this soft open-file limit, and more
# half-sent connections are opened than two workers could hold under it.
LOW_SOFT_LIMIT = 256
HALF_SENT_CONNECTIONS = 2 * LOW_SOFT_LIMIT + 100
MANY_HEADER_TIMEOUT = 5.0  # long enough to make a request while all of them are held

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.fixture(scope="module")
def web(harness_factory) -> ManagedProcess:
    harness = harness_factory(
        HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT),
        WEBSOCKET_RECONCILE_INTERVAL="3600",  # nothing but the first message on a socket
    )
    (web,) = harness.launch([harness.add_web()])
    return web


def request(method: str = "GET", path: str = "/healthz", *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connect(web: ManagedProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", web.port), timeout=ANSWER_SECONDS)


def statuses(received: bytes) -> list[int]:
    """The status codes of the responses in `received`, in order, each read to its end."""
    found = []
    while received:
        head, separator, rest = received.partition(b"\r\n\r\n")
        assert separator, f"incomplete response: {received[:300]!r}"
        status = _STATUS_LINE.match(head)
        assert status, f"not a response: {head[:300]!r}"
        found.append(int(status.group(1)))
        length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
        assert length, f"a response without Content-Length: {head!r}"
        received = rest[int(length.group(1)) :]
    return found


@dataclass
class Ending:
    received: bytes  # everything the server sent
    seconds: float  # from the moment given until the server closed the connection


def read_until_closed(conn: socket.socket, *, since: float, timeout: float) -> Ending:
    """Read until the server closes; AssertionError if it has not `timeout` s after `since`."""
    received = bytearray()
    deadline = since + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"still open {timeout:g} s later; received {bytes(received[:300])!r}"
            )
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return Ending(bytes(received), time.monotonic() - since)
        received += chunk


def read_response(conn: socket.socket, timeout: float = ANSWER_SECONDS) -> int:
    """Read one whole response (the connection stays open); its status."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        head, separator, rest = bytes(received).partition(b"\r\n\r\n")
        if separator:
            length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
            if length and len(rest) >= int(length.group(1)):
                assert len(rest) == int(length.group(1)), f"more than one response: {received!r}"
                return statuses(bytes(received))[0]
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no whole response within {timeout:g} s: {bytes(received)!r}"
        conn.settimeout(remaining)
        with contextlib.suppress(TimeoutError):
            chunk = conn.recv(65536)
            assert chunk, f"closed after {bytes(received)!r}"
            received += chunk


def assert_quiet_and_open(conn: socket.socket, seconds: float) -> None:
    """For `seconds`, the server sends nothing and does not close."""
    conn.settimeout(seconds)
    try:
        chunk = conn.recv(65536)
    except TimeoutError:
        return
    raise AssertionError(f"expected nothing for {seconds:g} s; got {chunk!r}")


# Header size


def test_headers_over_the_limit_are_answered_431_and_the_connection_closed(web):
    with connect(web) as conn:
        conn.sendall(request("GET", "/healthz", "X-Padding: " + "a" * 100_000))
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [431]


def test_headers_within_the_limit_are_served(web):
    padding = "a" * (MAX_HEADER_BYTES - 1024)
    with connect(web) as conn:
        conn.sendall(request("GET", "/healthz", "X-Padding: " + padding, "Connection: close"))
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [200]


def test_headers_over_the_limit_in_small_pieces_are_refused_too(web):
    with connect(web) as conn:
        conn.sendall(request("GET", "/healthz")[:-2])  # the headers go on
        for _ in range(MAX_HEADER_BYTES // 1000 + 1):
            conn.sendall(b"X-Padding: " + b"a" * 1000 + b"\r\n")
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [431]


# Header deadline


@pytest.mark.parametrize(
    "partial",
    [b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "],
    ids=["request-line", "headers"],
)
def test_a_request_whose_headers_stop_is_answered_408_and_closed(web, partial):
    opened = time.monotonic()
    with connect(web) as conn:
        conn.sendall(partial)
        ending = read_until_closed(conn, since=opened, timeout=HEADER_TIMEOUT + MARGIN)
    assert statuses(ending.received) == [408]
    assert ending.seconds >= HEADER_TIMEOUT - EARLY


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(web):
    opened = time.monotonic()
    with connect(web) as conn:
        ending = read_until_closed(conn, since=opened, timeout=HEADER_TIMEOUT + MARGIN)
    assert ending.received == b""
    assert ending.seconds >= HEADER_TIMEOUT - EARLY


def test_keep_alive_requests_each_get_their_own_header_deadline(web):
    opened = time.monotonic()
    with connect(web) as conn:
        for _ in range(3):
            conn.sendall(request())
            assert read_response(conn) == 200
            assert_quiet_and_open(conn, HEADER_TIMEOUT * 0.6)  # idle, within keep-alive
        assert time.monotonic() - opened > HEADER_TIMEOUT * 1.5
        started = time.monotonic()
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        ending = read_until_closed(conn, since=started, timeout=HEADER_TIMEOUT + MARGIN)
    assert statuses(ending.received) == [408]
    assert ending.seconds >= HEADER_TIMEOUT - EARLY  # counted from this request's first byte


def test_pipelined_requests_are_served_in_order(web):
    with connect(web) as conn:
        conn.sendall(request() + request("GET", "/healthz", "Connection: close"))
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [200, 200]


def test_a_pipelined_request_over_the_limit_is_refused_after_the_one_before(web):
    oversized = request("GET", "/healthz", "X-Padding: " + "a" * (MAX_HEADER_BYTES + 1000))
    with connect(web) as conn:
        conn.sendall(request() + oversized)
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [200, 431]


# Body deadline

_REFRESH = b'{"refresh": "not-a-token"}'


def test_a_body_that_stops_half_way_is_answered_408_and_closed(web):
    with connect(web) as conn:
        conn.sendall(request("POST", "/api/v1/auth/token/refresh", body=_REFRESH)[:-10])
        ending = read_until_closed(conn, since=time.monotonic(), timeout=BODY_TIMEOUT + MARGIN)
    assert statuses(ending.received) == [408]
    assert ending.seconds >= BODY_TIMEOUT - EARLY  # the body's deadline, not the headers'


def test_a_slow_body_within_its_deadline_is_served(web):
    whole = request("POST", "/api/v1/auth/token/refresh", "Connection: close", body=_REFRESH)
    with connect(web) as conn:
        conn.sendall(whole[:-10])
        assert_quiet_and_open(conn, HEADER_TIMEOUT + 0.3)  # past the header deadline
        conn.sendall(whole[-10:])
        ending = read_until_closed(conn, since=time.monotonic(), timeout=ANSWER_SECONDS)
    assert statuses(ending.received) == [401]  # the view read the body: an unknown token


# Many half-sent requests


@contextlib.contextmanager
def soft_open_file_limit(soft: int) -> Iterator[None]:
    """Processes started inside inherit this soft RLIMIT_NOFILE; the hard limit is unchanged."""
    previous, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (previous, hard))


def read_all_until_closed(conns: list[socket.socket], *, deadline: float) -> list[bytes]:
    """What the server sent on each connection until it closed it; AssertionError at deadline."""
    received = {conn: bytearray() for conn in conns}
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(selector.get_map())} of {len(conns)} still open")
            for key, _ in selector.select(remaining):
                try:
                    chunk = key.fileobj.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[key.fileobj] += chunk
                else:
                    selector.unregister(key.fileobj)
    return [bytes(received[conn]) for conn in conns]


def test_many_half_sent_requests_neither_starve_new_ones_nor_stay(harness_factory):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < HALF_SENT_CONNECTIONS + 200:
        pytest.fail(
            f"needs a hard open-file limit above {HALF_SENT_CONNECTIONS + 200} (ulimit -Hn); "
            f"this machine allows {hard}"
        )
    harness = harness_factory(HTTP_HEADER_TIMEOUT=str(MANY_HEADER_TIMEOUT))
    with soft_open_file_limit(LOW_SOFT_LIMIT):
        (web,) = harness.launch([harness.add_web()])
    conns: list[socket.socket] = []
    try:
        with soft_open_file_limit(hard if hard != resource.RLIM_INFINITY else 65536):
            opened = time.monotonic()
            for _ in range(HALF_SENT_CONNECTIONS):
                conn = connect(web)
                conns.append(conn)
                conn.sendall(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")

            answered = httpx.get(web.url + "/healthz", timeout=ANSWER_SECONDS)
            assert answered.status_code == 200
            assert time.monotonic() - opened < MANY_HEADER_TIMEOUT  # while all were held

            endings = read_all_until_closed(
                conns, deadline=time.monotonic() + MANY_HEADER_TIMEOUT + MARGIN
            )
        assert [statuses(received) for received in endings] == [[408]] * len(conns)
    finally:
        for conn in conns:
            conn.close()


# What must keep working


async def test_healthz_and_an_anonymous_socket_handshake_still_work(web):
    async with httpx.AsyncClient(base_url=web.url, timeout=ANSWER_SECONDS) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})

    async with websockets.connect(web.ws_url(SOCKET_PATH), open_timeout=ANSWER_SECONDS) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), ANSWER_SECONDS)
    assert ws.close_code == 4401


async def test_an_open_socket_outlives_the_request_deadlines(web, transactional_db):
    user = await ApiUser.register(web.url)
    try:
        live = await LiveSocket.open(web.ws_url(SOCKET_PATH), token=user.access, label="live")
        assert (await live.next_message(ANSWER_SECONDS))["type"] == "wizard_status"
        await live.expect_silence(HEADER_TIMEOUT + BODY_TIMEOUT + MARGIN)  # fails on a close
        pong = await live.connection.ping()
        await asyncio.wait_for(pong, ANSWER_SECONDS)
        await live.close()
    finally:
        await user.aclose()

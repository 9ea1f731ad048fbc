"""The handshake's Origin: our own host, a configured origin, or none at all.

Checked before authentication and even with ALLOWED_HOSTS=["*"]: a socket opened by another
site would otherwise act with the visitor's session cookie.
"""

import pytest
from django.utils import timezone

from realtime.tickets import _key as ticket_key
from tests.realtime.conftest import (
    access_token,
    assert_status_is_current,
    connect,
    db_call,
    mint_ticket,
    receive_json,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"testserver")


@pytest.fixture(autouse=True)
def any_host_allowed(settings):
    settings.ALLOWED_HOSTS = ["*"]
    settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://app.example.com", "http://localhost:3000"]


async def assert_accepted_with_status(communicator, user) -> None:
    since = timezone.now()
    assert await connect(communicator) is True
    await assert_status_is_current(await receive_json(communicator), user.pk, since=since)


@pytest.mark.parametrize(
    "headers",
    [
        [HOST, (b"origin", b"http://evil.example")],
        [(b"origin", b"http://evil.example")],
        [HOST, (b"origin", b"https://testserver.evil.example")],
        [HOST, (b"origin", b"http://testserver:8080")],
        [HOST, (b"origin", b"http://app.example.com")],  # configured as https only
        [HOST, (b"origin", b"https://app.example.com:8443")],
        [HOST, (b"origin", b"null")],
        [HOST, (b"origin", b"file://")],
        [HOST, (b"origin", b"")],
        [HOST, (b"origin", b"http://[::1]:8000")],
        [(b"host", b"[::1]:8000"), (b"origin", b"http://[::2]:8000")],
        [(b"host", b"[::1]:8000"), (b"origin", b"http://[::1]:8001")],
    ],
    ids=[
        "foreign",
        "foreign-without-host",
        "suffix-of-our-host",
        "our-host-other-port",
        "configured-host-other-scheme",
        "configured-host-other-port",
        "null",
        "file",
        "empty",
        "ipv6",
        "other-ipv6-than-our-host",
        "our-ipv6-host-other-port",
    ],
)
async def test_foreign_origin_is_refused_at_the_handshake(user, sockets, headers):
    cookie = await db_call(session_cookie)(user)
    communicator = sockets(f"token={access_token(user)}", headers=[*headers, (b"cookie", cookie)])
    assert await communicator.connect() == (False, 1000)
    assert await communicator.receive_nothing(timeout=0.2) is True
    await communicator.disconnect()


async def test_refused_handshake_does_not_spend_the_ticket(user, sockets, redis_client):
    ticket = await db_call(mint_ticket)(user)
    refused = sockets(f"ticket={ticket}", headers=[HOST, (b"origin", b"http://evil.example")])
    assert await refused.connect() == (False, 1000)
    assert redis_client.get(ticket_key(ticket)) == f"{user.pk}:0".encode()

    allowed = sockets(f"ticket={ticket}", headers=[HOST, (b"origin", b"http://testserver")])
    await assert_accepted_with_status(allowed, user)
    await refused.disconnect()
    await allowed.disconnect()


@pytest.mark.parametrize(
    "headers",
    [
        [HOST, (b"origin", b"http://testserver")],
        [HOST, (b"origin", b"https://testserver")],  # behind a TLS-terminating proxy
        [HOST, (b"origin", b"HTTP://TestServer:80")],
        [(b"host", b"testserver:8000"), (b"origin", b"http://testserver:8000")],
        [(b"host", b"[::1]:8000"), (b"origin", b"http://[::1]:8000")],
        [HOST, (b"origin", b"https://app.example.com")],
        [HOST, (b"origin", b"https://app.example.com:443")],
        [(b"origin", b"http://localhost:3000")],
        [HOST],
        [],
    ],
    ids=[
        "own-host",
        "own-host-https",
        "own-host-case-and-default-port",
        "own-host-with-port",
        "own-host-ipv6",
        "configured",
        "configured-explicit-default-port",
        "configured-without-host",
        "no-origin",
        "no-origin-no-host",
    ],
)
async def test_own_configured_or_absent_origin_is_allowed(user, sockets, headers):
    communicator = sockets(f"token={access_token(user)}", headers=headers)
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


async def test_session_cookie_from_our_own_page_is_allowed(user, sockets):
    cookie = await db_call(session_cookie)(user)
    communicator = sockets(headers=[HOST, (b"origin", b"http://testserver"), (b"cookie", cookie)])
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


async def test_unknown_path_is_refused(user, sockets):
    communicator = sockets(f"token={access_token(user)}", path="/ws/other/")
    assert await communicator.connect() == (False, 1000)
    await communicator.disconnect()


async def test_a_refused_origin_is_logged_once_with_the_setting_that_allows_it(
    user, sockets, caplog
):
    communicator = sockets(
        f"token={access_token(user)}", headers=[HOST, (b"origin", b"http://localhost:5173")]
    )
    with caplog.at_level("WARNING", logger="realtime.handshake"):
        assert await communicator.connect() == (False, 1000)
    refusals = [r for r in caplog.records if r.name == "realtime.handshake"]
    assert [(r.levelname, r.getMessage()) for r in refusals] == [
        (
            "WARNING",
            "Socket refused: origin 'http://localhost:5173' is not allowed; add it to "
            "WEBSOCKET_ALLOWED_ORIGINS (which defaults to CORS_ALLOWED_ORIGINS)",
        )
    ]
    await communicator.disconnect()


async def test_a_forged_origin_cannot_forge_log_lines(user, sockets, caplog):
    origin = b"http://x.example\nINFO fake line" + b"y" * 5000
    communicator = sockets(f"token={access_token(user)}", headers=[HOST, (b"origin", origin)])
    with caplog.at_level("WARNING", logger="realtime.handshake"):
        assert await communicator.connect() == (False, 1000)
    [refusal] = [r.getMessage() for r in caplog.records if r.name == "realtime.handshake"]
    assert "\n" not in refusal
    assert len(refusal) < 400
    await communicator.disconnect()


@pytest.mark.parametrize("host", [b"evil.example", b"evil.example:8000", b"127.0.0.1.evil.example"])
async def test_a_host_outside_allowed_hosts_is_refused_like_http(
    user, sockets, settings, host, caplog
):
    """Regression: HTTP refused such a Host (DNS rebinding), the socket handshake did not."""
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    communicator = sockets(f"token={access_token(user)}", headers=[(b"host", host)])
    with caplog.at_level("WARNING", logger="realtime.handshake"):
        assert await communicator.connect() == (False, 1000)
    assert [r.getMessage() for r in caplog.records if r.name == "realtime.handshake"] == [
        f"Socket refused: host {host.decode()!r} is not in ALLOWED_HOSTS"
    ]
    await communicator.disconnect()

    allowed = sockets(f"token={access_token(user)}", headers=[(b"host", b"127.0.0.1:8000")])
    await assert_accepted_with_status(allowed, user)
    await allowed.disconnect()

"""Attacks on authentication that the explicit cases in tests/realtime/test_socket_auth.py,
tests/realtime/test_socket_origin.py and tests/onboarding/test_api_auth.py leave open.

- A ticket opens its owner's socket, whatever else the holder sends: the socket then sees
  the owner's data only (first message, pushes, refresh), never the holder's.
- A ticket redeemed by many handshakes at once opens exactly one socket.
- Session cookies of a logged-out, anonymous or vanished session, and any generated cookie
  header, open nothing (4401 on the socket, 401 on the REST API).
- Any origin a browser can send for another site is refused at the handshake, even with a
  valid session cookie.
- Any generated token string, shaped like a JWT or not, signed with our key or another:
  4401 on the socket, 401 on the REST API. The claim sets start from a live sign-in's, so
  each is refused for what was spoiled in it (a missing `jti`, another sign-in, a future
  generation...), not for lacking what a real token has.
"""

import asyncio
import string
import time
from urllib.parse import quote

import jwt
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from onboarding.services import profile_update
from onboarding.sign_ins import sign_in_start, sign_out
from realtime.broadcast import broadcast_to_users, status_event
from realtime.tickets import _key as ticket_key
from tests.conftest import bearer_client, session_client
from tests.realtime.conftest import (
    PROMPT,
    TICKET_URL,
    access_token,
    closed,
    connect,
    current_status,
    db_call,
    mint_ticket,
    receive_close,
    receive_json,
    session_cookie,
    without_timestamp,
)

pytestmark = [pytest.mark.hostile, pytest.mark.django_db(transaction=True)]

ME = "/api/v1/accounts/me"
UNAUTHORIZED = {"detail": "Unauthorized"}
FUZZ = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


async def assert_refused_with_4401(communicator) -> None:
    assert await connect(communicator) is True
    assert await receive_close(communicator) == closed(4401)
    await communicator.disconnect()


# Tickets


async def test_a_ticket_opens_only_its_owners_socket_whatever_else_the_holder_sends(
    user, other_user, sockets, redis_client
):
    await db_call(profile_update)(user_id=user.pk, first_name="Owner", last_name="Of The Ticket")
    holder_cookie = await db_call(session_cookie)(other_user)
    # The holder asks for a ticket naming the owner: the endpoint takes no say in whose it is.
    asked = await db_call(bearer_client(other_user).post)(
        TICKET_URL, {"user_id": user.pk}, content_type="application/json"
    )
    assert asked.status_code == 201
    assert redis_client.get(ticket_key(asked.json()["ticket"])) == f"{other_user.pk}:0".encode()

    owners_ticket = await db_call(mint_ticket)(user)
    communicator = sockets(
        f"token={access_token(other_user)}&ticket={owners_ticket}",
        headers=[(b"cookie", holder_cookie)],
    )
    assert await connect(communicator) is True
    owners = await current_status(user.pk)
    assert owners != await current_status(other_user.pk)
    assert without_timestamp(await receive_json(communicator)) == owners

    # A refresh reads the owner's; the holder's pushes never reach it, the owner's do.
    await communicator.send_json_to({"type": "refresh"})
    assert without_timestamp(await receive_json(communicator)) == owners
    holders_push = dict(await current_status(other_user.pk), version=10_000, timestamp="x")
    await sync_to_async(broadcast_to_users)({other_user.pk: [status_event(holders_push)]})
    assert await communicator.receive_nothing(timeout=0.3) is True
    owners_push = dict(owners, version=owners["version"] + 1, timestamp="x", wizard_complete=True)
    await sync_to_async(broadcast_to_users)({user.pk: [status_event(owners_push)]})
    assert await receive_json(communicator) == owners_push
    await communicator.disconnect()


async def test_a_ticket_redeemed_by_many_handshakes_at_once_opens_exactly_one_socket(user, sockets):
    ticket = await db_call(mint_ticket)(user)
    racers = [sockets(f"ticket={ticket}") for _ in range(12)]
    assert await asyncio.gather(*(connect(racer) for racer in racers)) == [True] * 12

    outcomes = [await racer.receive_output(PROMPT) for racer in racers]
    opened = [outcome for outcome in outcomes if outcome["type"] == "websocket.send"]
    assert len(opened) == 1
    assert sorted(outcomes, key=lambda outcome: outcome["type"]) == [closed(4401)] * 11 + opened
    for racer in racers:
        await racer.disconnect()

    # Spent for good, also once its socket is gone.
    await assert_refused_with_4401(sockets(f"ticket={ticket}"))


# Session cookies


async def test_the_cookie_of_a_logged_out_session_opens_nothing(user, sockets):
    client = await db_call(session_client)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = await db_call(client.post)("/api/v1/auth/logout", headers={"X-CSRFToken": csrf})
    assert response.status_code == 204

    await assert_refused_with_4401(sockets(headers=[(b"cookie", cookie.encode())]))
    rest = await db_call(Client().get)(ME, HTTP_COOKIE=cookie)
    assert (rest.status_code, rest.json()) == (401, UNAUTHORIZED)


def _stored_session(**data) -> str:
    session = SessionStore()
    session.update(data)
    session.create()
    return session.session_key


@pytest.mark.parametrize(
    "session_data",
    [
        {},
        {"_auth_user_id": "999999999999", "_auth_user_hash": "x"},
    ],
    ids=["anonymous-session", "vanished-user"],
)
async def test_a_stored_session_without_a_live_login_opens_nothing(user, sockets, session_data):
    session_key = await db_call(_stored_session)(**session_data)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}"

    await assert_refused_with_4401(sockets(headers=[(b"cookie", cookie.encode())]))
    rest = await db_call(Client().get)(ME, HTTP_COOKIE=cookie)
    assert (rest.status_code, rest.json()) == (401, UNAUTHORIZED)


# What a header can carry: latin-1, no control characters.
header_text = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
session_like = st.text(string.ascii_lowercase + string.digits, min_size=0, max_size=70)
cookie_headers = st.one_of(
    st.text(header_text, max_size=300),
    session_like.map(lambda key: f"{settings.SESSION_COOKIE_NAME}={key}"),
    st.lists(session_like, min_size=2, max_size=4).map(
        lambda keys: "; ".join(f"{settings.SESSION_COOKIE_NAME}={key}" for key in keys)
    ),
    st.tuples(st.text(header_text, max_size=40), session_like).map(
        lambda pair: f"{pair[0]}; {settings.SESSION_COOKIE_NAME}={pair[1]}"
    ),
)


@hypothesis_settings(max_examples=100, **FUZZ)
@given(cookie=cookie_headers)
async def test_a_generated_cookie_header_opens_nothing(user, sockets, cookie):
    await assert_refused_with_4401(sockets(headers=[(b"cookie", cookie.encode("latin-1"))]))
    rest = await db_call(Client().get)(ME, HTTP_COOKIE=cookie)
    assert (rest.status_code, rest.json()) == (401, UNAUTHORIZED)


# Origins


ALLOWED_ORIGINS = ["https://app.example.com", "http://localhost:3000"]
OWN_HOSTS = {"testserver", "app.example.com", "localhost"}
label = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12).filter(
    lambda text: not text.startswith("-") and not text.endswith("-")
)
foreign_hosts = st.one_of(
    st.lists(label, min_size=1, max_size=4).map(".".join),
    st.sampled_from(sorted(OWN_HOSTS)).flatmap(
        lambda own: st.sampled_from([f"{own}.evil.test", f"evil-{own}", f"{own}-evil.test"])
    ),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts))),
).filter(lambda host: host not in OWN_HOSTS)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"))
foreign_origins = st.one_of(
    st.builds(
        lambda scheme, host, port: f"{scheme}://{host}{port}",
        st.sampled_from(["http", "https"]),
        foreign_hosts,
        ports,
    ),
    # Our own host or a configured one on another scheme or port than allowed, and the
    # origin browsers send from sandboxed frames and file pages.
    st.sampled_from(
        [
            "https://app.example.com:8443",
            "http://app.example.com",
            "http://testserver:8080",
            "https://localhost:3000",
            "http://localhost:3001",
            "null",
        ]
    ),
)


@pytest.fixture
async def cross_site_setup(user, sockets, settings) -> bytes:
    """A valid session cookie, accepted from our own page: the control for the test below."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.WEBSOCKET_ALLOWED_ORIGINS = ALLOWED_ORIGINS
    cookie = await db_call(session_cookie)(user)
    own_page = sockets(
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie)]
    )
    assert await connect(own_page) is True
    assert without_timestamp(await receive_json(own_page)) == await current_status(user.pk)
    await own_page.disconnect()
    return cookie


@hypothesis_settings(max_examples=80, **FUZZ)
@given(origin=foreign_origins)
async def test_any_origin_of_another_site_is_refused_even_with_a_valid_session(
    sockets, cross_site_setup, origin
):
    headers = [
        (b"host", b"testserver"),
        (b"origin", origin.encode()),
        (b"cookie", cross_site_setup),
    ]
    communicator = sockets(headers=headers)
    assert await communicator.connect(timeout=PROMPT) == (False, 1000)
    assert await communicator.receive_nothing(timeout=0.01) is True
    await communicator.disconnect()


# Tokens


@pytest.fixture
def live(user, other_user) -> dict:
    """The sign-in claims of a live sign-in of `user`, an ended one, and one of `other_user`."""
    ended = sign_in_start(user=user)
    sign_out(user_id=user.pk, sign_in_id=jwt_claims(ended.access)["sid"], refresh_token=None)
    return {
        "mine": jwt_claims(sign_in_start(user=user).access),
        "ended": jwt_claims(ended.access)["sid"],
        "theirs": jwt_claims(sign_in_start(user=other_user).access)["sid"],
    }


def jwt_claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _claims(live: dict, now: int) -> dict:
    mine = live["mine"]
    return {
        "sub": mine["sub"],
        "type": "access",
        "iat": now,
        "exp": now + 300,
        "jti": "0" * 16,
        "sid": mine["sid"],
        "gen": mine["gen"],
    }


def _without(name: str):
    return lambda claims, value, now, live: {key: v for key, v in claims.items() if key != name}


# Each makes a claim set that our key signs invalid, for a reason of its own.
SPOILERS = {
    "wrong-type": lambda claims, value, now, live: dict(claims, type=value or "refresh"),
    "non-digit-sub": lambda claims, value, now, live: dict(claims, sub=f"x{value}"),
    "integer-sub": lambda claims, value, now, live: dict(claims, sub=len(value) + 1),
    "unknown-user": lambda claims, value, now, live: dict(claims, sub=str(10**12 + len(value))),
    "expired": lambda claims, value, now, live: dict(claims, exp=now - 5 - len(value)),
    "not-yet-valid": lambda claims, value, now, live: dict(claims, nbf=now + 3600),
    "text-exp": lambda claims, value, now, live: dict(claims, exp=f"soon{value}"),
    "no-exp": _without("exp"),
    "no-iat": _without("iat"),
    "no-sub": _without("sub"),
    "no-type": _without("type"),
    "no-jti": _without("jti"),
    "no-sid": _without("sid"),
    "no-gen": _without("gen"),
    "empty-jti": lambda claims, value, now, live: dict(claims, jti=""),
    "ended-sign-in": lambda claims, value, now, live: dict(claims, sid=live["ended"]),
    "other-users-sign-in": lambda claims, value, now, live: dict(claims, sid=live["theirs"]),
    "unknown-sign-in": lambda claims, value, now, live: dict(claims, sid=10**12 + len(value)),
    "text-sid": lambda claims, value, now, live: dict(claims, sid=str(live["mine"]["sid"])),
    "other-generation": lambda claims, value, now, live: dict(
        claims, gen=live["mine"]["gen"] + 1 + len(value)
    ),
    "negative-generation": lambda claims, value, now, live: dict(claims, gen=-1),
    "float-generation": lambda claims, value, now, live: dict(
        claims, gen=float(live["mine"]["gen"])
    ),
}
base64url = string.ascii_letters + string.digits + "-_"


def tokens_for(live: dict) -> st.SearchStrategy:
    """Token strings none of which may authenticate the user of `live` or anyone else."""

    def spoiled(names: list[str], value: str) -> str:
        now = int(time.time())
        claims = _claims(live, now)
        for name in names:
            claims = SPOILERS[name](claims, value, now, live)
        return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")

    def signed(key: str, algorithm: str) -> str:
        return jwt.encode(_claims(live, int(time.time())), key, algorithm=algorithm)

    return st.one_of(
        st.text(header_text, max_size=200),
        st.lists(st.text(base64url, max_size=80), min_size=1, max_size=5).map(".".join),
        st.builds(
            spoiled,
            st.lists(st.sampled_from(sorted(SPOILERS)), min_size=1, max_size=3, unique=True),
            st.text(string.ascii_letters, max_size=8),
        ),
        # A valid claim set: under another HMAC algorithm than ours, or another key.
        st.builds(signed, st.just(settings.JWT_SIGNING_KEY), st.sampled_from(["HS384", "HS512"])),
        st.builds(
            signed,
            st.text(base64url, min_size=32, max_size=64).map(lambda key: f"other:{key}"),
            st.sampled_from(["HS256", "HS384"]),
        ),
    )


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # on purpose
@hypothesis_settings(max_examples=150, **FUZZ)
@given(data=st.data())
async def test_a_generated_token_opens_no_socket_and_no_api(user, sockets, live, data):
    token = data.draw(tokens_for(live), label="token")
    await assert_refused_with_4401(sockets(f"token={quote(token, safe='')}"))
    rest = await db_call(Client(headers={"Authorization": f"Bearer {token}"}).get)(ME)
    assert (rest.status_code, rest.json()) == (401, UNAUTHORIZED)
    assert rest["WWW-Authenticate"] == "Bearer"


@hypothesis_settings(max_examples=60, **FUZZ)
@given(ticket=st.text(header_text, max_size=130))
async def test_a_generated_ticket_opens_no_socket(user, sockets, ticket):
    await assert_refused_with_4401(sockets(f"ticket={quote(ticket, safe='')}"))

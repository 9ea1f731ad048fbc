"""Socket authentication, first match wins: ?ticket=, then ?token=, then the session cookie.

Bad credentials: the handshake is accepted and closed at once with 4401, nothing sent.
An inactive user: 4403, nothing sent.
"""

import secrets
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from onboarding.services import user_set_active
from realtime.tickets import _key as ticket_key
from tests.conftest import bearer_client
from tests.factories import make_user
from tests.realtime.conftest import (
    TICKET_URL,
    access_token,
    assert_nothing_queued,
    assert_status_is_current,
    closed,
    connect,
    db_call,
    eventually,
    hand_built_token,
    mint_ticket,
    receive_close,
    receive_json,
    refresh_token,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_accepted_with_status(communicator, user) -> None:
    since = timezone.now()
    assert await connect(communicator) is True
    await assert_status_is_current(await receive_json(communicator), user.pk, since=since)
    await assert_nothing_queued(communicator)


async def assert_refused(communicator, code: int) -> None:
    """Accepted, then closed with `code` before any message."""
    assert await connect(communicator) is True
    assert await receive_close(communicator) == closed(code)
    assert await communicator.receive_nothing(timeout=0.2) is True


# Tickets


async def test_ticket_from_the_rest_endpoint_authenticates(user, sockets, redis_client):
    response = await db_call(bearer_client(user).post)(TICKET_URL)
    assert response.status_code == 201
    ticket = response.json()["ticket"]
    assert response.json() == {"ticket": ticket, "expires_in": 60}
    assert redis_client.get(ticket_key(ticket)) == f"{user.pk}:0".encode()
    assert 0 < redis_client.ttl(ticket_key(ticket)) <= 60

    communicator = sockets(f"ticket={ticket}")
    await assert_accepted_with_status(communicator, user)
    # Redeemed: the key is gone.
    assert redis_client.exists(ticket_key(ticket)) == 0
    await communicator.disconnect()


async def test_reused_ticket_is_refused(user, sockets):
    ticket = await db_call(mint_ticket)(user)
    first = sockets(f"ticket={ticket}")
    await assert_accepted_with_status(first, user)

    second = sockets(f"ticket={ticket}")
    await assert_refused(second, 4401)
    await first.disconnect()
    await second.disconnect()


@pytest.mark.parametrize(
    "ticket",
    [
        secrets.token_urlsafe(32),  # well formed, never issued
        "garbage",
        "!" * 43,
        "a" * 129,
    ],
    ids=["unknown", "short", "bad-characters", "too-long"],
)
async def test_unknown_or_garbage_ticket_is_refused(user, sockets, ticket):
    communicator = sockets(f"ticket={ticket}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_ticket_whose_key_was_deleted_is_refused(user, sockets, redis_client):
    ticket = await db_call(mint_ticket)(user)
    assert redis_client.delete(ticket_key(ticket)) == 1

    communicator = sockets(f"ticket={ticket}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_expired_ticket_is_refused(user, sockets, redis_client, settings):
    settings.WEBSOCKET_TICKET_TTL_SECONDS = 1
    ticket = await db_call(mint_ticket)(user)  # asserts expires_in == 1

    async def expired() -> bool:
        return redis_client.exists(ticket_key(ticket)) == 0

    await eventually(expired, timeout=5)
    communicator = sockets(f"ticket={ticket}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_ticket_endpoint_requires_authentication(anonymous):
    response = await db_call(anonymous.post)(TICKET_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


# Access tokens


async def test_access_token_authenticates(user, sockets):
    communicator = sockets(f"token={access_token(user)}")
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


async def test_hand_built_token_with_the_issued_claims_authenticates(user, sockets):
    # The control for the bad tokens below: each differs from this one in one way only.
    communicator = sockets(f"token={hand_built_token(user.pk)}")
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{header}.{payload}.{flipped}{signature[1:]}"


@pytest.mark.parametrize(
    "make_token",
    [
        refresh_token,
        lambda user: _tampered(access_token(user)),
        lambda user: hand_built_token(
            user.pk,
            iat=timezone.now() - timedelta(hours=1),
            exp=timezone.now() - timedelta(seconds=1),
        ),
        lambda user: hand_built_token(user.pk, algorithm="none"),
        lambda user: hand_built_token(user.pk, key="another-key-" + "x" * 40),
        lambda user: hand_built_token(user.pk, type="refresh"),
        lambda user: "not-a-jwt",
    ],
    ids=["refresh", "tampered", "expired", "alg-none", "other-key", "type-refresh", "garbage"],
)
async def test_bad_token_is_refused(user, sockets, make_token):
    communicator = sockets(f"token={make_token(user)}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_token_of_a_deleted_user_is_refused(sockets):
    user = await db_call(make_user)()
    token = access_token(user)
    await db_call(user.delete)()

    communicator = sockets(f"token={token}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


# Session cookie


async def test_session_cookie_authenticates(user, sockets):
    cookie = await db_call(session_cookie)(user)
    communicator = sockets(headers=[(b"cookie", cookie)])
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "cookie",
    [
        f"{settings.SESSION_COOKIE_NAME}={secrets.token_hex(16)}",
        f"{settings.SESSION_COOKIE_NAME}={'a' * 65}",
        f"{settings.SESSION_COOKIE_NAME}=",
        "csrftoken=abc",
    ],
    ids=["forged", "overlong", "empty", "other-cookie-only"],
)
async def test_forged_or_absent_session_cookie_is_refused(user, sockets, cookie):
    communicator = sockets(headers=[(b"cookie", cookie.encode())])
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_session_after_a_password_change_is_refused(user, sockets):
    cookie = await db_call(session_cookie)(user)

    def change_password() -> None:
        user.set_password("another correct horse battery staple")
        user.save(update_fields=["password"])

    await db_call(change_password)()
    communicator = sockets(headers=[(b"cookie", cookie)])
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_no_credentials_is_refused(user, sockets):
    communicator = sockets()
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


# First match wins


async def test_bad_ticket_wins_over_a_valid_token(user, sockets):
    communicator = sockets(f"ticket={secrets.token_urlsafe(32)}&token={access_token(user)}")
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_valid_ticket_wins_over_a_bad_token(user, sockets):
    ticket = await db_call(mint_ticket)(user)
    communicator = sockets(f"token=garbage&ticket={ticket}")
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


async def test_bad_token_wins_over_a_valid_session_cookie(user, sockets):
    cookie = await db_call(session_cookie)(user)
    communicator = sockets("token=garbage", headers=[(b"cookie", cookie)])
    await assert_refused(communicator, 4401)
    await communicator.disconnect()


async def test_valid_token_wins_over_a_forged_session_cookie(user, sockets):
    forged = f"{settings.SESSION_COOKIE_NAME}={secrets.token_hex(16)}".encode()
    communicator = sockets(f"token={access_token(user)}", headers=[(b"cookie", forged)])
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()


async def test_token_of_one_user_and_ticket_of_another_authenticates_the_ticket(
    user, other_user, sockets
):
    ticket = await db_call(mint_ticket)(other_user)
    communicator = sockets(f"token={access_token(user)}&ticket={ticket}")
    await assert_accepted_with_status(communicator, other_user)
    await communicator.disconnect()


# Inactive users


async def test_inactive_user_with_a_token_is_forbidden(user, sockets):
    token = access_token(user)
    await db_call(user_set_active)(user_id=user.pk, is_active=False)

    communicator = sockets(f"token={token}")
    await assert_refused(communicator, 4403)
    await communicator.disconnect()


async def test_inactive_user_with_a_ticket_is_forbidden(user, sockets, redis_client):
    ticket = await db_call(mint_ticket)(user)
    await db_call(user_set_active)(user_id=user.pk, is_active=False)

    communicator = sockets(f"ticket={ticket}")
    await assert_refused(communicator, 4403)
    assert redis_client.exists(ticket_key(ticket)) == 0
    await communicator.disconnect()


async def test_inactive_user_with_a_session_is_forbidden(user, sockets):
    cookie = await db_call(session_cookie)(user)
    await db_call(user_set_active)(user_id=user.pk, is_active=False)

    communicator = sockets(headers=[(b"cookie", cookie)])
    await assert_refused(communicator, 4403)
    await communicator.disconnect()


async def test_reactivated_user_connects_again(user, sockets):
    await db_call(user_set_active)(user_id=user.pk, is_active=False)
    await db_call(user_set_active)(user_id=user.pk, is_active=True)

    communicator = sockets(f"token={access_token(user)}")
    await assert_accepted_with_status(communicator, user)
    await communicator.disconnect()

"""Revocation reaches the sockets (contract section 6).

A password change, "end all sessions" and deactivation close every socket the user had open
(4401, or 4403 for a deactivated user): by the relay's push, and by the reconciler when that
push never comes. Sockets opened with the new credentials stay open; credentials issued
before (tokens, tickets, sessions) open nothing. A logout ends only its own sign-in.
"""

import pytest
from django.test import Client

from onboarding import services, sign_ins
from outbox.models import Actor, OutboxEvent, Topic
from outbox.relay import outbox_relay
from realtime.broadcast import broadcast_to_users, credentials_revoked_event
from tests.factories import PASSWORD
from tests.realtime.conftest import (
    access_token,
    assert_nothing_queued,
    closed,
    connect,
    db_call,
    mint_ticket,
    receive_close,
    receive_json,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a brand new pass phrase 9"


async def open_socket(sockets, query: str = "", headers=None):
    communicator = sockets(query, headers=headers)
    assert await connect(communicator) is True
    assert (await receive_json(communicator))["type"] == "wizard_status"
    return communicator


def change_password(user) -> dict:
    response = Client(headers={"Authorization": f"Bearer {access_token(user)}"}).post(
        "/api/v1/auth/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def pending_topics(user) -> list[str]:
    return list(OutboxEvent.objects.pending().filter(user=user).values_list("topic", flat=True))


async def test_a_password_change_closes_every_open_socket_of_the_user_with_4401(
    user, other_user, sockets
):
    by_token = await open_socket(sockets, f"token={await db_call(access_token)(user)}")
    by_ticket = await open_socket(sockets, f"ticket={await db_call(mint_ticket)(user)}")
    by_session = await open_socket(
        sockets, headers=[(b"cookie", await db_call(session_cookie)(user))]
    )
    stranger = await open_socket(sockets, f"token={await db_call(access_token)(other_user)}")

    pair = await db_call(change_password)(user)
    assert await db_call(pending_topics)(user) == [Topic.CREDENTIALS_REVOKED]
    await db_call(outbox_relay)()

    for communicator in (by_token, by_ticket, by_session):
        assert await receive_close(communicator) == closed(4401)
    await assert_nothing_queued(stranger)
    # The new credentials open a socket, and the late push of the same revocation (a
    # relay that retries) does not close it.
    fresh = await open_socket(sockets, f"token={pair['access']}")
    await db_call(broadcast_to_users)({user.pk: [credentials_revoked_event(generation=1)]})
    await assert_nothing_queued(fresh)
    for communicator in (by_token, by_ticket, by_session, stranger, fresh):
        await communicator.disconnect()


async def test_ending_all_sessions_closes_the_sockets_and_voids_unredeemed_tickets(
    user, sockets, admin_user
):
    socket = await open_socket(sockets, f"token={await db_call(access_token)(user)}")
    unredeemed = await db_call(mint_ticket)(user)
    old_token = await db_call(access_token)(user)

    await db_call(sign_ins.user_sessions_end)(user_id=user.pk, actor=Actor.admin(admin_user.pk))
    await db_call(outbox_relay)()

    assert await receive_close(socket) == closed(4401)
    for query in (f"ticket={unredeemed}", f"token={old_token}"):
        refused = sockets(query)
        assert await connect(refused) is True
        assert await receive_close(refused) == closed(4401)
        await refused.disconnect()
    await socket.disconnect()


async def test_a_deactivation_closes_with_4403_and_reactivation_brings_no_credential_back(
    user, sockets
):
    token = await db_call(access_token)(user)
    ticket = await db_call(mint_ticket)(user)
    socket = await open_socket(sockets, f"token={token}")

    await db_call(services.user_set_active)(user_id=user.pk, is_active=False)
    await db_call(outbox_relay)()
    assert await receive_close(socket) == closed(4403)
    await db_call(services.user_set_active)(user_id=user.pk, is_active=True)

    for query in (f"token={token}", f"ticket={ticket}"):
        refused = sockets(query)
        assert await connect(refused) is True
        assert await receive_close(refused) == closed(4401)
        await refused.disconnect()
    await socket.disconnect()


async def test_the_reconciler_closes_revoked_sockets_when_the_push_is_lost(
    user, other_user, sockets, settings
):
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = 0.5
    first = await open_socket(sockets, f"token={await db_call(access_token)(user)}")
    second = await open_socket(sockets, headers=[(b"cookie", await db_call(session_cookie)(user))])
    stranger = await open_socket(sockets, f"token={await db_call(access_token)(other_user)}")

    pair = await db_call(change_password)(user)  # no relay runs: the push never comes
    fresh = await open_socket(sockets, f"token={pair['access']}")

    assert await receive_close(first, timeout=5) == closed(4401)
    assert await receive_close(second, timeout=5) == closed(4401)
    await assert_nothing_queued(fresh)
    await assert_nothing_queued(stranger)
    assert await db_call(pending_topics)(user) == [Topic.CREDENTIALS_REVOKED]
    for communicator in (first, second, fresh, stranger):
        await communicator.disconnect()


async def test_a_logout_ends_only_its_own_sign_in_and_leaves_open_sockets_open(user, sockets):
    pair = await db_call(sign_ins.sign_in_start)(user=user)
    other = await db_call(sign_ins.sign_in_start)(user=user)
    socket = await open_socket(sockets, f"token={pair.access}")

    response = await db_call(Client(headers={"Authorization": f"Bearer {pair.access}"}).post)(
        "/api/v1/auth/logout"
    )
    assert response.status_code == 204
    await db_call(outbox_relay)()

    await assert_nothing_queued(socket)
    refused = sockets(f"token={pair.access}")
    assert await connect(refused) is True
    assert await receive_close(refused) == closed(4401)
    await open_socket(sockets, f"token={other.access}")
    await refused.disconnect()
    await socket.disconnect()

"""Statuses pushed to open sockets: by the relay's broadcast, by the reconciler without it.

`broadcast_to_users` publishes straight to Redis, which is the relay's real path, and
`outbox_relay()` is the relay itself. No Celery worker runs here: the on-commit nudge only
queues a message nobody consumes, so a status arrives only by what the test does.
"""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from onboarding.selectors import wizard_status_get
from onboarding.services import profile_update, user_set_active
from onboarding.status import WizardStatus
from outbox.models import OutboxEvent, Topic
from outbox.relay import RelayReport, outbox_relay
from realtime.broadcast import broadcast_to_users, deactivated_event, status_event
from realtime.reconcile import registry
from tests.realtime.conftest import (
    PROMPT,
    access_token,
    assert_nothing_queued,
    assert_status_is_current,
    closed,
    connect,
    db_call,
    mint_ticket,
    receive_close,
    receive_json,
)

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.5  # how long "receives nothing" listens


async def open_socket(sockets, user, *, ticket: bool = False):
    """A socket of `user` (token or ticket) whose first message has been read."""
    credential = f"ticket={await db_call(mint_ticket)(user)}" if ticket else ""
    communicator = sockets(credential or f"token={access_token(user)}")
    assert await connect(communicator) is True
    first = await receive_json(communicator)
    assert first["type"] == "wizard_status"
    return communicator, first


def status_message(user_id: int, version: int, **details: bool) -> dict:
    """A status as the relay would send it, built with the selectors' own type."""
    all_details = dict.fromkeys(
        (
            "first_name",
            "last_name",
            "phone_number",
            "business_type",
            "manual_prompt",
            "channel_connected",
            "instagram_connected",
            "telegram_connected",
        ),
        False,
    )
    all_details.update(details)
    return WizardStatus(
        user_id=user_id,
        version=version,
        wizard_complete=False,
        details=all_details,
        computed_at=timezone.now(),
    ).as_message()


async def push(statuses: dict[int, dict]) -> None:
    await sync_to_async(broadcast_to_users)(
        {user_id: [status_event(message)] for user_id, message in statuses.items()}
    )


async def pending_rows(user) -> list[tuple[str, int]]:
    def read():
        return list(
            OutboxEvent.objects.filter(user_id=user.pk, relayed_at__isnull=True)
            .order_by("id")
            .values_list("topic", "version")
        )

    return await db_call(read)()


# Pushed by broadcast_to_users


async def test_broadcast_reaches_every_socket_of_the_user_and_no_one_else(
    user, other_user, sockets
):
    first, initial = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user, ticket=True)
    stranger, _ = await open_socket(sockets, other_user)

    message = status_message(user.pk, initial["version"] + 1, first_name=True)
    await push({user.pk: message})

    assert await receive_json(first) == message
    assert await receive_json(second) == message
    assert await stranger.receive_nothing(timeout=QUIET) is True
    # The wait above covered every socket: the others need only a fence.
    await assert_nothing_queued(first)
    await assert_nothing_queued(second)
    for communicator in (first, second, stranger):
        await communicator.disconnect()


async def test_one_broadcast_batch_reaches_each_user_its_own_status(user, other_user, sockets):
    mine, _ = await open_socket(sockets, user)
    theirs, _ = await open_socket(sockets, other_user)

    my_status = status_message(user.pk, 5, first_name=True)
    their_status = status_message(other_user.pk, 7, last_name=True)
    await push({user.pk: my_status, other_user.pk: their_status})

    assert await receive_json(mine) == my_status
    assert await receive_json(theirs) == their_status
    assert await mine.receive_nothing(timeout=QUIET) is True
    # The wait above covered every socket: the others need only a fence.
    await assert_nothing_queued(theirs)
    await mine.disconnect()
    await theirs.disconnect()


async def test_older_duplicate_and_unchanged_versions_are_not_forwarded(user, sockets, caplog):
    caplog.set_level(logging.INFO, logger="realtime.consumers")
    communicator, initial = await open_socket(sockets, user)
    base = initial["version"]

    v1 = status_message(user.pk, base + 1, first_name=True)
    await push({user.pk: v1})
    assert await receive_json(communicator) == v1

    # Lower than what the socket already got: never forwarded.
    await push({user.pk: status_message(user.pk, base, last_name=True)})
    # The same version again (a relay retry): not re-sent.
    await push({user.pk: v1})
    # Newer, but the same content: only noted.
    await push({user.pk: status_message(user.pk, base + 2, first_name=True)})
    assert await communicator.receive_nothing(timeout=QUIET) is True

    # It was noted: base + 1 is now older than what the socket knows, whatever it says.
    await push({user.pk: status_message(user.pk, base + 1, phone_number=True)})
    assert await communicator.receive_nothing(timeout=QUIET) is True

    # A newer change still arrives.
    v3 = status_message(user.pk, base + 3, first_name=True, last_name=True)
    await push({user.pk: v3})
    assert await receive_json(communicator) == v3
    # Every push before v3 was handled before it: a fence shows v3 came alone.
    await assert_nothing_queued(communicator)

    await communicator.disconnect()
    # One "updated" line per status actually sent, none for the ones held back.
    assert [r.getMessage() for r in caplog.records if r.name == "realtime.consumers"] == [
        f"User {user.pk} connected to wizard-status WebSocket",
        f"Wizard status updated for user {user.pk}",
        f"Wizard status updated for user {user.pk}",
        f"User {user.pk} disconnected from wizard-status WebSocket",
    ]


# Pushed by the relay


async def test_relay_pushes_a_committed_change_to_every_socket_of_the_user(
    user, other_user, sockets
):
    first, initial = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user)
    stranger, _ = await open_socket(sockets, other_user)

    await db_call(profile_update)(user_id=user.pk, first_name="Ada")
    assert await pending_rows(user) == [(Topic.PROFILE_UPDATED, initial["version"] + 1)]
    # Nothing runs the relay but the test (the reconciler is off here).
    assert await first.receive_nothing(timeout=QUIET) is True

    since = timezone.now()
    report = await db_call(outbox_relay)()
    assert report == RelayReport(claimed=1, relayed=1, pushed=1, rescheduled=0, failed=0)

    for communicator in (first, second):
        message = await receive_json(communicator)
        await assert_status_is_current(message, user.pk, since=since)
        assert message["version"] == initial["version"] + 1
        assert message["details"]["first_name"] is True
    assert await stranger.receive_nothing(timeout=QUIET) is True
    # The wait above covered every socket: the others need only a fence.
    await assert_nothing_queued(first)
    await assert_nothing_queued(second)
    assert await pending_rows(user) == []
    for communicator in (first, second, stranger):
        await communicator.disconnect()


async def test_relay_of_a_change_that_alters_nothing_visible_pushes_nothing(user, sockets):
    communicator, initial = await open_socket(sockets, user)
    await db_call(profile_update)(user_id=user.pk, first_name="Ada")
    assert await db_call(outbox_relay)() == RelayReport(claimed=1, relayed=1, pushed=1)
    assert (await receive_json(communicator))["version"] == initial["version"] + 1

    # Another name: a new version, but the same status.
    await db_call(profile_update)(user_id=user.pk, first_name="Grace")
    assert await db_call(outbox_relay)() == RelayReport(claimed=1, relayed=1, pushed=0)
    assert await communicator.receive_nothing(timeout=QUIET) is True

    since = timezone.now()
    await communicator.send_json_to({"type": "refresh"})
    refreshed = await receive_json(communicator)
    await assert_status_is_current(refreshed, user.pk, since=since)
    assert refreshed["version"] == initial["version"] + 2
    await communicator.disconnect()


async def test_relay_of_a_deactivation_closes_every_socket_of_the_user_with_4403(
    user, other_user, sockets
):
    first, _ = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user, ticket=True)
    stranger, _ = await open_socket(sockets, other_user)

    await db_call(user_set_active)(user_id=user.pk, is_active=False)
    assert await first.receive_nothing(timeout=QUIET) is True

    report = await db_call(outbox_relay)()
    assert report == RelayReport(claimed=1, relayed=1, pushed=1, rescheduled=0, failed=0)
    assert await receive_close(first) == closed(4403)
    assert await receive_close(second) == closed(4403)
    assert await stranger.receive_nothing(timeout=QUIET) is True
    await assert_nothing_queued(stranger)
    for communicator in (first, second, stranger):
        await communicator.disconnect()


async def test_deactivated_event_from_the_broadcast_closes_with_4403(user, sockets):
    communicator, _ = await open_socket(sockets, user)
    await sync_to_async(broadcast_to_users)({user.pk: [deactivated_event()]})
    assert await receive_close(communicator) == closed(4403)
    await communicator.disconnect()


# Convergence without the push: the reconciler


async def test_socket_converges_without_the_relay(user, other_user, sockets, settings):
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = 0.5
    first, initial = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user)
    stranger, _ = await open_socket(sockets, other_user)

    since = timezone.now()
    await db_call(profile_update)(user_id=user.pk, first_name="Ada", last_name="Lovelace")

    for communicator in (first, second):
        message = await receive_json(communicator, timeout=5)
        await assert_status_is_current(message, user.pk, since=since)
        assert message["version"] == initial["version"] + 1
        assert message["missing_fields"] == [
            "phone_number",
            "business_type",
            "manual_prompt",
            "channel_connected",
        ]
    # Delivered once, however many rounds the reconciler makes; the relay never ran.
    assert await first.receive_nothing(timeout=1.2) is True
    # The wait above covered every socket: the others need only a fence.
    await assert_nothing_queued(second)
    await assert_nothing_queued(stranger)
    assert await pending_rows(user) == [(Topic.PROFILE_UPDATED, initial["version"] + 1)]
    for communicator in (first, second, stranger):
        await communicator.disconnect()


async def test_reconciler_closes_a_deactivated_users_sockets_with_4403(
    user, other_user, sockets, settings
):
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = 0.5
    first, initial = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user)
    stranger, _ = await open_socket(sockets, other_user)

    await db_call(user_set_active)(user_id=user.pk, is_active=False)

    assert await receive_close(first, timeout=5) == closed(4403)
    assert await receive_close(second, timeout=5) == closed(4403)
    assert await pending_rows(user) == [(Topic.ACCOUNT_ACTIVATION_CHANGED, initial["version"] + 1)]
    assert await stranger.receive_nothing(timeout=1.2) is True
    for communicator in (first, second, stranger):
        await communicator.disconnect()
    assert registry.count(user.pk) == 0
    assert registry.count(other_user.pk) == 0


async def test_reconciler_puts_right_a_socket_ahead_of_the_database(user, sockets, settings):
    """A forged push (a neighbour on the same Redis, a restored database) must not freeze a
    socket: it would otherwise ignore every real status below that version, refresh too."""
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = 0.5
    communicator, initial = await open_socket(sockets, user)
    since = timezone.now()
    forged = status_message(user.pk, 10**12, first_name=True, last_name=True)
    await push({user.pk: forged})
    assert await receive_json(communicator) == forged

    put_right = await receive_json(communicator, timeout=5)
    assert put_right["version"] == initial["version"]
    await assert_status_is_current(put_right, user.pk, since=since)

    # Real changes flow again, pushed and refreshed.
    real = status_message(user.pk, initial["version"] + 1, first_name=True)
    await push({user.pk: real})
    assert await receive_json(communicator) == real
    await communicator.send_json_to({"type": "refresh"})
    assert (await receive_json(communicator))["version"] >= initial["version"]
    await communicator.disconnect()


async def test_reconciler_leaves_a_socket_that_is_only_up_to_date_alone(user, sockets, settings):
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = 0.3
    communicator, _ = await open_socket(sockets, user)
    await db_call(profile_update)(user_id=user.pk, first_name="Ada")
    message = (await db_call(wizard_status_get)(user_id=user.pk)).as_message()
    await push({user.pk: message})
    assert await receive_json(communicator) == message

    # Several rounds of the reconciler: nothing to put right, nothing sent.
    assert await communicator.receive_nothing(timeout=1.0) is True
    await communicator.disconnect()


# Sockets per user


async def test_socket_over_the_per_user_limit_is_closed_with_4429(
    user, other_user, sockets, settings
):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 2
    first, _ = await open_socket(sockets, user)
    second, _ = await open_socket(sockets, user)

    extra = sockets(f"token={access_token(user)}")
    assert await connect(extra) is True
    assert await receive_close(extra) == closed(4429)
    assert await extra.receive_nothing(timeout=0.2) is True
    await extra.disconnect()
    assert registry.count(user.pk) == 2

    # Another user is not affected, and a freed slot can be used again.
    theirs, _ = await open_socket(sockets, other_user)
    await first.disconnect()
    assert registry.count(user.pk) == 1
    replacement, _ = await open_socket(sockets, user)

    # Both open sockets get pushes; the refused one left no trace in the registry.
    message = status_message(user.pk, 50, first_name=True)
    await push({user.pk: message})
    assert await receive_json(second) == message
    assert await receive_json(replacement) == message
    for communicator in (second, replacement, theirs):
        await communicator.disconnect()
    assert registry.count(user.pk) == 0


async def test_concurrent_handshakes_cannot_exceed_the_per_user_limit(user, sockets, settings):
    settings.WEBSOCKET_MAX_SOCKETS_PER_USER = 2
    communicators = [sockets(f"token={access_token(user)}") for _ in range(4)]
    assert await asyncio.gather(*(connect(c) for c in communicators)) == [True] * 4

    outcomes = [await c.receive_output(PROMPT) for c in communicators]
    sent = [o for o in outcomes if o["type"] == "websocket.send"]
    refused = [o for o in outcomes if o["type"] == "websocket.close"]
    assert len(sent) == 2
    assert refused == [closed(4429), closed(4429)]
    assert registry.count(user.pk) == 2
    for communicator in communicators:
        await communicator.disconnect()
    assert registry.count(user.pk) == 0


async def test_reconnecting_in_a_loop_is_bounded_per_user(user, other_user, sockets, settings):
    """Each handshake reads the status for its first message: a client that reconnects in a
    loop is refused (4429) past the connect limit, other users are not."""
    settings.WEBSOCKET_CONNECT_LIMIT = "3/m"
    for _ in range(3):
        communicator, _ = await open_socket(sockets, user)
        await communicator.disconnect()

    refused = sockets(f"token={access_token(user)}")
    assert await connect(refused) is True
    assert await receive_close(refused) == closed(4429)
    await refused.disconnect()
    assert registry.count(user.pk) == 0
    theirs, _ = await open_socket(sockets, other_user)
    await theirs.disconnect()

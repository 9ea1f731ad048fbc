"""The conversation on an open socket: first message, refresh, ping, and bad client input.

After every error the socket stays open: a ping still answers.
"""

import json
import logging

import pytest
from django.utils import timezone

from onboarding.services import channel_connect, manual_prompt_save, profile_update
from tests.factories import make_complete_user
from tests.realtime.conftest import (
    BINARY,
    NOT_A_MESSAGE,
    NOT_JSON,
    UNKNOWN_TYPE,
    access_token,
    assert_nothing_queued,
    assert_status_is_current,
    closed,
    connect,
    current_status,
    db_call,
    eventually,
    parse_timestamp,
    receive_close,
    receive_json,
    to_millis,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def open_socket(user, sockets):
    """A socket of `user` whose first message has been read."""
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    first = await receive_json(communicator)
    assert first["type"] == "wizard_status"
    return communicator


async def assert_pong(communicator) -> None:
    before = timezone.now()
    await communicator.send_json_to({"type": "ping"})
    answer = await receive_json(communicator)
    assert answer == {"type": "pong", "timestamp": answer["timestamp"]}
    assert to_millis(before) <= parse_timestamp(answer["timestamp"]) <= timezone.now()


# The first message


async def test_first_message_is_the_status_of_a_new_user(user, sockets):
    since = timezone.now()
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    first = await receive_json(communicator)
    await assert_status_is_current(first, user.pk, since=since)
    assert {key: value for key, value in first.items() if key != "timestamp"} == {
        "type": "wizard_status",
        "wizard_complete": False,
        "can_complete": False,
        "missing_fields": [
            "first_name",
            "last_name",
            "phone_number",
            "business_type",
            "manual_prompt",
            "channel_connected",
        ],
        "details": {
            "first_name": False,
            "last_name": False,
            "phone_number": False,
            "business_type": False,
            "manual_prompt": False,
            "channel_connected": False,
            "instagram_connected": False,
            "telegram_connected": False,
        },
        "progress": {"completed": 0, "total": 6, "percent": 0},
        "version": 0,
    }
    await assert_nothing_queued(communicator)
    await communicator.disconnect()


async def test_first_message_is_the_status_of_a_user_with_data(sockets):
    user = await db_call(make_complete_user)()
    await db_call(channel_connect)(user_id=user.pk, platform="telegram", external_id="tg-1")
    since = timezone.now()
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    first = await receive_json(communicator)
    await assert_status_is_current(first, user.pk, since=since)
    assert {key: first[key] for key in ("can_complete", "missing_fields", "progress")} == {
        "can_complete": True,
        "missing_fields": [],
        "progress": {"completed": 6, "total": 6, "percent": 100},
    }
    assert first["details"]["telegram_connected"] is True
    assert first["version"] == 1
    await communicator.disconnect()


async def test_connect_and_disconnect_are_logged(user, sockets, caplog):
    caplog.set_level(logging.INFO, logger="realtime.consumers")
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    await receive_json(communicator)
    await communicator.disconnect()
    assert [r.getMessage() for r in caplog.records if r.name == "realtime.consumers"] == [
        f"User {user.pk} connected to wizard-status WebSocket",
        f"User {user.pk} disconnected from wizard-status WebSocket",
    ]


# refresh and ping


async def test_refresh_answers_a_fresh_status_from_the_database(user, open_socket):
    await db_call(profile_update)(user_id=user.pk, first_name="Ada", phone_number="+14155552671")
    await db_call(manual_prompt_save)(user_id=user.pk, content="Be kind.")

    since = timezone.now()
    await open_socket.send_json_to({"type": "refresh"})
    answer = await receive_json(open_socket)
    await assert_status_is_current(answer, user.pk, since=since)
    assert answer["version"] == 2
    assert answer["missing_fields"] == ["last_name", "business_type", "channel_connected"]
    assert answer["progress"] == {"completed": 3, "total": 6, "percent": 50}
    await assert_nothing_queued(open_socket)
    await open_socket.disconnect()


async def test_refresh_without_a_change_answers_the_same_status_again(user, open_socket):
    await open_socket.send_json_to({"type": "refresh"})
    answer = await receive_json(open_socket)
    assert {k: v for k, v in answer.items() if k != "timestamp"} == await current_status(user.pk)
    assert answer["version"] == 0
    await open_socket.disconnect()


async def test_ping_answers_pong_with_a_timestamp(open_socket):
    await assert_pong(open_socket)
    assert await open_socket.receive_nothing(timeout=0.2) is True
    await open_socket.disconnect()


async def test_extra_fields_in_a_message_are_ignored(open_socket):
    await open_socket.send_json_to({"type": "ping", "id": 7, "nested": {"a": [1, 2]}})
    answer = await receive_json(open_socket)
    assert answer == {"type": "pong", "timestamp": answer["timestamp"]}
    await open_socket.disconnect()


# Bad input


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", NOT_JSON),
        ("{", NOT_JSON),
        ('{"type": "ping"', NOT_JSON),
        ("[" * 4000, NOT_JSON),  # deeper than the parser recurses
        ("[]", NOT_A_MESSAGE),
        ('[{"type": "ping"}]', NOT_A_MESSAGE),
        ('"ping"', NOT_A_MESSAGE),
        ("42", NOT_A_MESSAGE),
        ("null", NOT_A_MESSAGE),
        ("{}", NOT_A_MESSAGE),
        ('{"kind": "ping"}', NOT_A_MESSAGE),
        ('{"type": 1}', NOT_A_MESSAGE),
        ('{"type": null}', NOT_A_MESSAGE),
        ('{"type": ["ping"]}', NOT_A_MESSAGE),
        ('{"type": {"ping": true}}', NOT_A_MESSAGE),
        ('{"type": "subscribe"}', UNKNOWN_TYPE),
        ('{"type": "_private"}', UNKNOWN_TYPE),
        ('{"type": "a.b"}', UNKNOWN_TYPE),
        ('{"type": ""}', UNKNOWN_TYPE),
        ('{"type": "PING"}', UNKNOWN_TYPE),
        ('{"type": "wizard.status"}', UNKNOWN_TYPE),
        ('{"type": "wizard_status"}', UNKNOWN_TYPE),
        ('{"type": "wizard.account_deactivated"}', UNKNOWN_TYPE),
        ('{"type": "websocket.disconnect"}', UNKNOWN_TYPE),
        ('{"type": "send_error"}', UNKNOWN_TYPE),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else value["code"],
)
async def test_bad_text_frame_answers_an_error_and_the_socket_stays_open(
    user, open_socket, frame, error
):
    await open_socket.send_to(text_data=frame)
    assert await receive_json(open_socket) == error
    await assert_nothing_queued(open_socket)
    await assert_pong(open_socket)
    await open_socket.disconnect()


async def test_binary_frame_answers_invalid_message_and_the_socket_stays_open(open_socket):
    await open_socket.send_to(bytes_data=json.dumps({"type": "ping"}).encode())
    assert await receive_json(open_socket) == BINARY
    await assert_pong(open_socket)
    await open_socket.disconnect()


async def test_every_error_in_a_row_leaves_the_socket_open(user, open_socket):
    await open_socket.send_to(text_data="nope")
    await open_socket.send_to(text_data="[]")
    await open_socket.send_to(bytes_data=b"\x00\x01")
    await open_socket.send_to(text_data='{"type": "_private"}')
    assert [await receive_json(open_socket) for _ in range(4)] == [
        NOT_JSON,
        NOT_A_MESSAGE,
        BINARY,
        UNKNOWN_TYPE,
    ]
    since = timezone.now()
    await open_socket.send_json_to({"type": "refresh"})
    await assert_status_is_current(await receive_json(open_socket), user.pk, since=since)
    await open_socket.disconnect()


# Refresh rate limit


async def test_eleventh_refresh_in_a_row_is_rate_limited(user, open_socket):
    for _ in range(11):
        await open_socket.send_json_to({"type": "refresh"})
    answers = [await receive_json(open_socket) for _ in range(11)]

    expected = await current_status(user.pk)
    assert [{k: v for k, v in a.items() if k != "timestamp"} for a in answers[:10]] == [
        expected
    ] * 10
    limited = answers[10]
    assert limited == {
        "type": "error",
        "code": "rate_limited",
        "detail": "Too many refreshes; wait and retry.",
        "retry_after": limited["retry_after"],
    }
    assert type(limited["retry_after"]) is int
    assert 1 <= limited["retry_after"] <= 10
    await assert_nothing_queued(open_socket)
    # Still open, and ping is not rate limited.
    await assert_pong(open_socket)
    await open_socket.send_json_to({"type": "refresh"})
    assert (await receive_json(open_socket))["code"] == "rate_limited"
    await open_socket.disconnect()


async def opened(sockets, user):
    """A new socket of `user` whose first message (a status) has been read."""
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    assert (await receive_json(communicator))["type"] == "wizard_status"
    return communicator


async def test_refresh_limit_is_per_user_across_sockets(user, other_user, sockets, open_socket):
    for _ in range(10):
        await open_socket.send_json_to({"type": "refresh"})
    assert [(await receive_json(open_socket))["type"] for _ in range(10)] == ["wizard_status"] * 10

    other = await opened(sockets, user)
    await other.send_json_to({"type": "refresh"})
    assert (await receive_json(other))["code"] == "rate_limited"
    # Another user's budget is their own.
    theirs = await opened(sockets, other_user)
    await theirs.send_json_to({"type": "refresh"})
    assert (await receive_json(theirs))["type"] == "wizard_status"
    for communicator in (open_socket, other, theirs):
        await communicator.disconnect()


async def test_reconnecting_does_not_reset_the_refresh_limit(user, sockets, open_socket):
    """Regression: the budget was per socket, so a client reconnected for ten more reads."""
    for _ in range(10):
        await open_socket.send_json_to({"type": "refresh"})
        assert (await receive_json(open_socket))["type"] == "wizard_status"
    await open_socket.disconnect()

    again = sockets(f"token={access_token(user)}")
    assert await connect(again) is True
    assert (await receive_json(again))["type"] == "wizard_status"  # the first message is due
    await again.send_json_to({"type": "refresh"})
    answer = await receive_json(again)
    assert answer["code"] == "rate_limited"
    assert 1 <= answer["retry_after"] <= 10
    await again.disconnect()


async def test_pings_and_bad_frames_are_bounded_per_socket(user, sockets, settings):
    """One error says when to resume; frames past the bound go unanswered, and the socket
    stays open. Another socket of the user has its own bound."""
    settings.WEBSOCKET_MESSAGE_LIMIT = "5/1s"
    mine = await opened(sockets, user)
    for frame in ('{"type": "ping"}', "not json", "[]", '{"type": "ping"}', "{}"):
        await mine.send_to(text_data=frame)
    answers = [await receive_json(mine) for _ in range(5)]
    assert [a["type"] for a in answers] == ["pong", "error", "error", "pong", "error"]
    for _ in range(20):
        await mine.send_json_to({"type": "ping"})
    refused = await receive_json(mine)
    assert refused == {
        "type": "error",
        "code": "rate_limited",
        "detail": "Too many messages; wait and retry.",
        "retry_after": 1,
    }
    assert await mine.receive_nothing(timeout=0.2) is True
    # Refreshes have their own limit.
    await mine.send_json_to({"type": "refresh"})
    assert (await receive_json(mine))["type"] == "wizard_status"

    other = await opened(sockets, user)
    await other.send_json_to({"type": "ping"})
    assert (await receive_json(other))["type"] == "pong"

    async def answered_again() -> bool:
        await mine.send_json_to({"type": "ping"})
        if await mine.receive_nothing(timeout=0.3):
            return False  # still refused, silently
        return (await receive_json(mine))["type"] == "pong"

    await eventually(answered_again, timeout=3, interval=0.2)
    await mine.disconnect()
    await other.disconnect()


async def test_refreshes_are_allowed_again_after_the_window(user, open_socket, settings):
    settings.WEBSOCKET_REFRESH_LIMIT = "2/1s"
    for _ in range(3):
        await open_socket.send_json_to({"type": "refresh"})
    answers = [await receive_json(open_socket) for _ in range(3)]
    assert [a["type"] for a in answers] == ["wizard_status", "wizard_status", "error"]
    assert answers[2]["retry_after"] == 1

    async def refresh_answered() -> bool:
        await open_socket.send_json_to({"type": "refresh"})
        return (await receive_json(open_socket))["type"] == "wizard_status"

    await eventually(refresh_answered, timeout=3, interval=0.1)
    await open_socket.disconnect()


# Frame size


def _ping_of_size(size: int, *, filler: str = "x") -> str:
    """A ping frame of exactly `size` UTF-8 bytes."""
    frame = json.dumps({"type": "ping", "pad": ""}, ensure_ascii=False)
    room = size - len(frame.encode())
    per_char = len(filler.encode())
    assert room % per_char == 0
    frame = json.dumps({"type": "ping", "pad": filler * (room // per_char)}, ensure_ascii=False)
    assert len(frame.encode()) == size
    return frame


async def test_text_frame_of_exactly_4096_bytes_is_answered(open_socket):
    await open_socket.send_to(text_data=_ping_of_size(4096))
    answer = await receive_json(open_socket)
    assert answer == {"type": "pong", "timestamp": answer["timestamp"]}
    await open_socket.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        _ping_of_size(4097),
        "x" * 1_000_000,
    ],
    ids=["4097-bytes", "one-megabyte-garbage"],
)
async def test_text_frame_over_4096_bytes_closes_with_1009(open_socket, frame):
    assert len(frame.encode()) > 4096
    await open_socket.send_to(text_data=frame)
    assert await receive_close(open_socket) == closed(1009)
    assert await open_socket.receive_nothing(timeout=0.2) is True
    await open_socket.disconnect()


async def test_limit_counts_bytes_not_characters(open_socket):
    frame = _ping_of_size(4127, filler="é")
    assert len(frame) == 2077
    await open_socket.send_to(text_data=frame)
    assert await receive_close(open_socket) == closed(1009)
    await open_socket.disconnect()


async def test_binary_frame_over_4096_bytes_closes_with_1009(open_socket):
    await open_socket.send_to(bytes_data=b"\x00" * 4097)
    assert await receive_close(open_socket) == closed(1009)
    await open_socket.disconnect()

"""The socket's frames against their schemas (`realtime.protocol`): every kind it sends.

A socket is driven into sending each frame type and error code; every frame received on
the way is checked, so a field added, renamed or mistyped in any of them fails here.
"""

from typing import get_args

import pytest

from onboarding.services import profile_update
from realtime.protocol import SERVER_FRAME, ErrorCode, ErrorFrame, PongFrame
from tests.realtime.conftest import access_token, connect, db_call, receive_json

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_ERROR_CODE = set(get_args(ErrorCode))


async def test_every_frame_the_socket_sends_matches_its_schema(settings, user, sockets):
    settings.WEBSOCKET_REFRESH_LIMIT = "1/10s"
    communicator = sockets(f"token={access_token(user)}")
    assert await connect(communicator) is True
    received = [await receive_json(communicator)]  # the first status

    await db_call(profile_update)(user_id=user.pk, first_name="Ada")
    await communicator.send_to(text_data='{"type": "refresh"}')  # the status, read fresh
    for frame in (
        '{"type": "ping"}',
        "not json",
        "[1, 2]",
        '{"type": "dance"}',
        '{"type": "refresh"}',  # the second within the window: rate_limited
    ):
        await communicator.send_to(text_data=frame)
    await communicator.send_to(bytes_data=b"\x00")
    while len(received) < 8:
        received.append(await receive_json(communicator))

    parsed = [SERVER_FRAME.validate_python(frame) for frame in received]
    kinds = [frame["type"] for frame in received]
    assert kinds.count("wizard_status") == 2
    assert sum(isinstance(frame, PongFrame) for frame in parsed) == 1
    errors = [frame for frame in parsed if isinstance(frame, ErrorFrame)]
    assert {error.code for error in errors} == EVERY_ERROR_CODE
    assert [error.retry_after is not None for error in errors] == [
        error.code == "rate_limited" for error in errors
    ]
    await communicator.disconnect()

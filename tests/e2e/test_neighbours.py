"""Two deployments on one Redis server, each on its own database number, with no setting.

Redis keys live in a database, but pub/sub channels are server-wide: without a layer prefix
of its own a deployment's sockets would hear the other's pushes and forged statuses. Both
deployments here share one PostgreSQL database (so a user exists in both, as ids repeat
across real deployments), each has its web process; only the first has a worker.
"""

import json

import pytest
import websockets
from django.conf import settings
from redis.connection import parse_url

from tests.e2e.clients import SOCKET_PATH, ApiUser, LiveSocket

pytestmark = pytest.mark.e2e

PUSH_SECONDS = 5.0
# A push to one deployment reaches both at about the same moment, if it reaches both: after
# the first got it, this is long enough for a stray copy to have reached the other too.
STRAY_SECONDS = 0.5


def neighbour_redis_url(url: str) -> str:
    database = int(parse_url(url).get("db", 0))
    base = url.rsplit("/", 1)[0] if url.rsplit("/", 1)[-1].isdigit() else url.rstrip("/")
    return f"{base}/{(database + 1) % 16}"


@pytest.fixture(scope="module")
def deployments(harness_factory):
    # No CHANNEL_LAYER_PREFIX: each deployment must be isolated by its defaults alone.
    ours = harness_factory(CHANNEL_LAYER_PREFIX=None, WEBSOCKET_RECONCILE_INTERVAL="3600")
    theirs = harness_factory(
        CHANNEL_LAYER_PREFIX=None,
        WEBSOCKET_RECONCILE_INTERVAL="3600",
        REDIS_URL=neighbour_redis_url(settings.REDIS_URL),
    )
    our_web, our_worker, their_web = ours.add_web(), ours.add_worker(), theirs.add_web()
    ours.launch([our_web, our_worker])
    theirs.launch([their_web])
    return our_web, their_web


async def ping_is_next(socket: LiveSocket) -> None:
    """Frames arrive in order: a pong as the next frame proves nothing was queued before it."""
    await socket.connection.send(json.dumps({"type": "ping"}))
    assert (await socket.next_message(PUSH_SECONDS))["type"] == "pong"


async def test_a_push_of_one_deployment_never_reaches_the_other(deployments, transactional_db):
    our_web, their_web = deployments
    user = await ApiUser.register(our_web.url)
    ours = await LiveSocket.open(our_web.ws_url(SOCKET_PATH), token=user.access, label="ours")
    theirs = await LiveSocket.open(their_web.ws_url(SOCKET_PATH), token=user.access, label="theirs")
    try:
        first = await ours.next_message(PUSH_SECONDS)
        their_first = await theirs.next_message(PUSH_SECONDS)
        assert their_first["version"] == first["version"]

        await user.patch_profile(first_name="Ada")
        await ours.wait_for_status(lambda status: status["details"]["first_name"], PUSH_SECONDS)
        await theirs.expect_silence(STRAY_SECONDS)
        await ping_is_next(theirs)
        assert theirs.statuses == [their_first]
    finally:
        await ours.close()
        await theirs.close()
        await user.aclose()


async def test_a_ticket_of_one_deployment_is_unknown_to_the_other(deployments, transactional_db):
    our_web, their_web = deployments
    user = await ApiUser.register(our_web.url)
    try:
        answer = await user.http.post("/api/v1/realtime/ticket")
        assert answer.status_code == 201
        ticket = answer.json()["ticket"]
        url = f"{their_web.ws_url(SOCKET_PATH)}?ticket={ticket}"
        async with websockets.connect(url, open_timeout=10) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd.code == 4401
        # Still unspent where it was minted.
        url = f"{our_web.ws_url(SOCKET_PATH)}?ticket={ticket}"
        async with websockets.connect(url, open_timeout=10) as socket:
            assert json.loads(await socket.recv())["type"] == "wizard_status"
    finally:
        await user.aclose()

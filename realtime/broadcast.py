"""The broadcast helper the outbox relay calls: one round trip to Redis for a whole batch.

With the pub/sub layer a group message is one PUBLISH of the layer's own serialised message
to the layer's group channel, so a batch goes out as one pipeline per Redis server from sync
code: no event loop, no thread and no new connection per message (`async_to_sync(group_send)`
costs ~2.5 ms each). With several servers (CHANNEL_LAYER_URLS) each group channel goes to the
server the layer's own consistent hashing picks, where the web processes subscribed to it.
Other layers (the in-memory one in unit tests) get plain `group_send` calls.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from django.conf import settings

from config.redis import redis_client
from realtime.groups import user_group

STATUS_EVENT = "wizard.status"
DEACTIVATED_EVENT = "wizard.account_deactivated"
CREDENTIALS_REVOKED_EVENT = "wizard.credentials_revoked"


def status_event(status_message: dict[str, Any]) -> dict[str, Any]:
    return {"type": STATUS_EVENT, "status": status_message}


def deactivated_event() -> dict[str, Any]:
    return {"type": DEACTIVATED_EVENT}


def credentials_revoked_event(*, generation: int) -> dict[str, Any]:
    """Sockets opened under an older credentials generation close (4401)."""
    return {"type": CREDENTIALS_REVOKED_EVENT, "generation": generation}


def broadcast_to_users(events: Mapping[int, Sequence[dict[str, Any]]]) -> None:
    """Send each user's events, in order, to the user's group. Raises if the layer could
    not take them."""
    if not any(events.values()):
        return
    layer = get_channel_layer()
    if isinstance(layer, RedisPubSubChannelLayer):
        _publish_by_shard(layer, events)
        return
    for user_id, user_events in events.items():
        for event in user_events:
            async_to_sync(layer.group_send)(user_group(user_id), event)


def _publish_by_shard(
    layer: RedisPubSubChannelLayer, events: Mapping[int, Sequence[dict[str, Any]]]
) -> None:
    """One pipeline per server. A server that fails after another took its part raises: the
    relay retries the batch, and the users already sent get the same versions again."""
    # The layer's own naming and shard choice, from a loop layer that opens no connection
    # until it is used (it never is): they cannot drift from what the consumers subscribe to.
    routing = RedisPubSubLoopLayer(
        **settings.CHANNEL_LAYERS["default"]["CONFIG"], channel_layer=layer
    )
    pipes: dict[str, redis.client.Pipeline] = {}
    for user_id, user_events in events.items():
        channel = routing._get_group_channel_name(user_group(user_id))
        address = routing._get_shard(channel).host["address"]
        pipe = pipes.get(address)
        if pipe is None:
            pipe = pipes[address] = redis_client(address).pipeline(transaction=False)
        for event in user_events:
            pipe.publish(channel, layer.serialize(event))
    for pipe in pipes.values():
        pipe.execute()

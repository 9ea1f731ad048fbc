"""The floor's one channel layer: channels-redis pub/sub with the product's host options."""

import functools
import os

from channels_redis.pubsub import RedisPubSubChannelLayer


@functools.cache
def floor_layer() -> RedisPubSubChannelLayer:
    # Read when first used, in the process that uses it: the benchmark sets the variables.
    return RedisPubSubChannelLayer(
        hosts=[
            {
                "address": os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/9"),
                # redis-py's 5 s default would end idle subscriptions (see DESIGN.md).
                "socket_timeout": None,
                "max_connections": 1000,
            }
        ],
        prefix=os.environ.get("FLOOR_PREFIX", "floor"),
    )


def group_name(user_id: int) -> str:
    return f"u{user_id}"

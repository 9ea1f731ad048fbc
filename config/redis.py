"""The process's Redis client for short commands (sign-in limits, tickets).

One client, one set of timeouts: a command that waits longer than this on Redis fails
rather than holding a request thread. The channel layer and Celery keep their own
connections, configured in the settings.
"""

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30
        )
    return client

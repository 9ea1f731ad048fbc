"""The process's Redis clients for short commands (sign-in limits, quotas, tickets, sockets,
the relay's nudge and batch publish, the readiness probe).

One set of timeouts: a command that waits longer than this on Redis fails rather than
holding a request thread or a socket's handshake. The channel layer and Celery keep their
own connections, configured in the settings.
"""

import asyncio
from typing import TYPE_CHECKING

import redis
from django.conf import settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_CONNECT_TIMEOUT_SECONDS = 1
_COMMAND_TIMEOUT_SECONDS = 2

_clients: dict[str, redis.Redis] = {}
_async_clients: dict[tuple[asyncio.AbstractEventLoop, str], "aioredis.Redis"] = {}


def redis_client(url: str | None = None) -> redis.Redis:
    """The client of `url` (default `REDIS_URL`; the channel layer's server may be another)."""
    url = url or settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url,
            socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=_COMMAND_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
    return client


def async_redis_client() -> "aioredis.Redis":
    """The client of the running event loop (an asyncio client cannot cross loops)."""
    # Imported here: ~0.4 s at start, and only web processes (sockets) use it.
    import redis.asyncio as aioredis

    key = (asyncio.get_running_loop(), settings.REDIS_URL)
    client = _async_clients.get(key)
    if client is None:
        # A bounded pool: the thousands of sockets a deploy closes at once (each giving its
        # lease back) take turns on a few connections instead of opening one each.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_SOCKET_POOL_SIZE,
            timeout=_COMMAND_TIMEOUT_SECONDS,
            socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            socket_timeout=_COMMAND_TIMEOUT_SECONDS,
        )
        client = _async_clients[key] = aioredis.Redis(connection_pool=pool)
    return client

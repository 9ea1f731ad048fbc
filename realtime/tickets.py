"""One-time socket tickets: short-lived, single use, kept in Redis (only a hash of each)."""

import asyncio
import hashlib
import re
import secrets

import redis
import redis.asyncio as aioredis
from django.conf import settings

_KEY_PREFIX = "wizard:ticket:"
_TICKET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_sync_client: redis.Redis | None = None
_async_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


def _key(ticket: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def _sync_redis() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
    return _sync_client


def _async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        _async_clients[loop] = client
    return client


def ticket_issue(*, user_id: int) -> str:
    ticket = secrets.token_urlsafe(32)
    _sync_redis().set(_key(ticket), user_id, ex=settings.WEBSOCKET_TICKET_TTL_SECONDS)
    return ticket


async def ticket_redeem(ticket: str) -> int | None:
    """The user id the ticket was issued to, once; None if unknown, expired or used."""
    if not _TICKET_SHAPE.match(ticket):
        return None
    value = await _async_redis().getdel(_key(ticket))
    return int(value) if value is not None else None

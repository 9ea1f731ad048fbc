"""The per-user socket limit across every web process (contract section 6).

Each open socket holds a lease in a Redis sorted set of its user, scored by when the lease
ends. Taking one is a single script (drop ended leases, count, add), so handshakes racing on
several processes cannot pass the limit together. Each web process renews the leases of its
sockets while they are open (realtime.reconcile) and gives them back on disconnect; a process
that dies without doing so loses its leases within `WEBSOCKET_LEASE_SECONDS`.

Redis down, the limit falls back to this process's own count.
"""

import logging
from collections.abc import Mapping, Sequence

import redis
from django.conf import settings

from config.redis import async_redis_client

logger = logging.getLogger(__name__)

_KEY_PREFIX = "wizard:socket-leases:"
_REDIS_ERRORS = (redis.RedisError, OSError)

# KEYS[1]: the user's leases. ARGV: limit, lease (ms), the socket. Answers 1 when taken.
_TAKE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS: users' leases; ARGV: lease (ms), then for each key its socket count and sockets.
_RENEW_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local lease = tonumber(ARGV[1])
local position = 2
for _, key in ipairs(KEYS) do
    local count = tonumber(ARGV[position])
    for i = 1, count do
        redis.call('ZADD', key, now + lease, ARGV[position + i])
    end
    redis.call('PEXPIRE', key, lease)
    position = position + count + 1
end
return 1
"""


def _key(user_id: int) -> str:
    return f"{_KEY_PREFIX}{user_id}"


def _lease_ms() -> int:
    return int(settings.WEBSOCKET_LEASE_SECONDS * 1000)


async def socket_lease_take(*, user_id: int, socket: str, local_count: int) -> bool:
    """Whether `socket` may open: fewer than the limit of the user's sockets are open."""
    limit = settings.WEBSOCKET_MAX_SOCKETS_PER_USER
    try:
        taken = await async_redis_client().eval(
            _TAKE_SCRIPT, 1, _key(user_id), limit, _lease_ms(), socket
        )
    except _REDIS_ERRORS:
        logger.warning("Socket leases unavailable; counting this process only", exc_info=True)
        return local_count < limit
    return bool(taken)


async def socket_lease_give_back(*, user_id: int, socket: str) -> None:
    try:
        await async_redis_client().zrem(_key(user_id), socket)
    except _REDIS_ERRORS:
        logger.debug("Could not give back a socket lease; it ends on its own", exc_info=True)


# Users per renewal script. A script holds Redis for its whole run, every other client's
# command waiting behind it (pushes, relay nudges): one over 10,000 users took 15-80 ms.
RENEW_BATCH_USERS = 500


async def socket_leases_renew(sockets_by_user: Mapping[int, Sequence[str]]) -> None:
    """Renew the leases of open sockets (and take them again after Redis lost them)."""
    users = [(user_id, sockets) for user_id, sockets in sockets_by_user.items() if sockets]
    for start in range(0, len(users), RENEW_BATCH_USERS):
        batch = users[start : start + RENEW_BATCH_USERS]
        arguments: list = [_lease_ms()]
        for _, sockets in batch:
            arguments += [len(sockets), *sockets]
        keys = [_key(user_id) for user_id, _ in batch]
        try:
            await async_redis_client().eval(_RENEW_SCRIPT, len(keys), *keys, *arguments)
        except _REDIS_ERRORS:
            logger.warning("Could not renew socket leases", exc_info=True)
            return

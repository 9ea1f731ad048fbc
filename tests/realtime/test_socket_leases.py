"""Lease renewal goes to Redis in batches: no one script holds Redis for every socket."""

import redis
from django.conf import settings

from realtime import socket_leases


async def test_every_users_leases_are_renewed_in_batches_of_a_bounded_size(monkeypatch):
    client = redis.Redis.from_url(settings.REDIS_URL)
    users = {user_id: [f"socket-{user_id}-a", f"socket-{user_id}-b"] for user_id in range(1, 8)}
    client.delete(*(socket_leases._key(user_id) for user_id in users))
    scripts: list[int] = []
    real_client = socket_leases.async_redis_client

    class Counting:
        def __init__(self) -> None:
            self.redis = real_client()

        async def eval(self, script, key_count, *arguments):
            scripts.append(key_count)
            return await self.redis.eval(script, key_count, *arguments)

    monkeypatch.setattr(socket_leases, "RENEW_BATCH_USERS", 3)
    monkeypatch.setattr(socket_leases, "async_redis_client", Counting)
    await socket_leases.socket_leases_renew(users)

    assert scripts == [3, 3, 1]
    for user_id, sockets in users.items():
        key = socket_leases._key(user_id)
        assert sorted(client.zrange(key, 0, -1)) == [s.encode() for s in sockets]
        assert 0 < client.pttl(key) <= settings.WEBSOCKET_LEASE_SECONDS * 1000
    client.delete(*(socket_leases._key(user_id) for user_id in users))

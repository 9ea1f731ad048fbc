"""Convergence without trusting the push.

The channel layer delivers at most once: a group message can be dropped, and a Redis
restart forgets subscriptions for a while. So each web process keeps a registry of its open
sockets, and every few seconds one task reads the onboarding version, activity and
credentials generation of all their users in one small query. A socket behind the database
gets the current status straight away, in process, without Redis; a deactivated user's
sockets are closed (4403), and so are sockets opened under revoked credentials (4401); a
socket ahead of the database (a forged push, a restored database) is put back on it. The
push keeps latency low; this keeps every socket correct within the interval, whatever was
lost or added on the way. The same task renews the sockets' leases (realtime.socket_leases).
"""

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from onboarding.selectors import SocketsHeld, socket_checks_differing, wizard_statuses_get
from realtime.metrics import RECONCILE_SECONDS
from realtime.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from realtime.socket_leases import socket_leases_renew


class ReconciledSocket(Protocol):
    """What the reconciler needs of a socket (the consumer registers itself)."""

    user_id: int
    channel_name: str
    group_joined: bool
    known_version: int
    credentials_generation: int

    async def join_group(self) -> None: ...
    def opened_before(self, credentials_generation: int) -> bool: ...
    async def deliver_status(self, status: dict[str, Any], *, force: bool = False) -> None: ...
    async def replace_status(self, status: dict[str, Any], *, unless_newer_than: int) -> None: ...
    async def close(self, code: int | None = None, reason: str | None = None) -> None: ...


logger = logging.getLogger(__name__)


class SocketRegistry:
    def __init__(self) -> None:
        self._by_user: dict[int, set[ReconciledSocket]] = defaultdict(set)
        self._task: asyncio.Task | None = None

    def count(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, ()))

    def add(self, consumer: ReconciledSocket) -> None:
        self._by_user[consumer.user_id].add(consumer)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, consumer: ReconciledSocket) -> None:
        sockets = self._by_user.get(consumer.user_id)
        if sockets is not None:
            sockets.discard(consumer)
            if not sockets:
                del self._by_user[consumer.user_id]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        renew_every = settings.WEBSOCKET_LEASE_SECONDS / 3
        reconcile_at = loop.time() + settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS
        renew_at = loop.time() + renew_every
        while self._by_user:
            await asyncio.sleep(max(0.0, min(reconcile_at, renew_at) - loop.time()))
            now = loop.time()
            if now >= renew_at:
                await self.renew_leases()
                renew_at = now + renew_every
            if now >= reconcile_at:
                try:
                    await self.reconcile()
                except Exception:
                    logger.warning("Socket reconciliation failed; retrying", exc_info=True)
                reconcile_at = now + settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS

    async def renew_leases(self) -> None:
        await socket_leases_renew(
            {
                user_id: [consumer.channel_name for consumer in group]
                for user_id, group in self._by_user.items()
            }
        )

    async def reconcile(self) -> None:
        """Bring every registered socket up to the database's current status."""
        started = time.perf_counter()
        sockets = {user_id: list(group) for user_id, group in self._by_user.items() if group}
        if not sockets:
            return
        held = SocketsHeld(
            user_ids=[], lowest_versions=[], highest_versions=[], oldest_generations=[]
        )
        for user_id, consumers in sockets.items():
            for consumer in consumers:
                if not consumer.group_joined:
                    await consumer.join_group()
            versions = [consumer.known_version for consumer in consumers]
            held.user_ids.append(user_id)
            held.lowest_versions.append(min(versions))
            held.highest_versions.append(max(versions))
            held.oldest_generations.append(min(c.credentials_generation for c in consumers))
        query_started = time.perf_counter()
        checks = await database_sync_to_async(socket_checks_differing)(held=held)
        query_seconds = time.perf_counter() - query_started
        stale: list[int] = []
        ahead: list[int] = []
        for user_id, check in checks.items():
            consumers = sockets[user_id]
            if check is None or not check.is_active:
                await _close_all(consumers, code=CLOSE_FORBIDDEN)
                sockets[user_id] = []
                continue
            revoked = [c for c in consumers if c.opened_before(check.credentials_generation)]
            await _close_all(revoked, code=CLOSE_UNAUTHENTICATED)
            consumers = sockets[user_id] = [c for c in consumers if c not in revoked]
            if any(consumer.known_version < check.version for consumer in consumers):
                stale.append(user_id)
            if any(consumer.known_version > check.version for consumer in consumers):
                ahead.append(user_id)  # or a change committed since that read: see below
        RECONCILE_SECONDS.labels("query").observe(query_seconds)
        RECONCILE_SECONDS.labels("loop").observe(time.perf_counter() - started - query_seconds)
        if not stale and not ahead:
            return
        # Most sockets found behind have their push on the way: give it a moment to land,
        # and read the status only of those still behind.
        await asyncio.sleep(settings.WEBSOCKET_RECONCILE_GRACE_SECONDS)
        stale = [
            user_id
            for user_id in stale
            if any(c.known_version < checks[user_id].version for c in sockets[user_id])
        ]
        # Every version a socket got honestly was committed before it was sent, so a read
        # that starts after noting the socket's version cannot be older: one that is, the
        # database never had (a forged push, a restored database).
        noted = {c: c.known_version for user_id in ahead for c in sockets[user_id]}
        if not stale and not noted:
            return
        users = list(dict.fromkeys([*stale, *ahead]))
        statuses = await database_sync_to_async(wizard_statuses_get)(user_ids=users)
        for user_id in users:
            status = statuses.get(user_id)
            if status is None:
                continue
            message = status.as_message()
            for consumer in sockets[user_id]:
                try:
                    if noted.get(consumer, -1) > status.version:
                        await consumer.replace_status(message, unless_newer_than=noted[consumer])
                    else:
                        await consumer.deliver_status(message)
                except Exception:  # the socket closed meanwhile; its disconnect cleans up
                    logger.debug("Could not deliver to a closing socket", exc_info=True)


async def _close_all(consumers: list[ReconciledSocket], *, code: int) -> None:
    for consumer in consumers:
        try:
            await consumer.close(code=code)
        except Exception:
            logger.debug("Could not close a closing socket", exc_info=True)


registry = SocketRegistry()

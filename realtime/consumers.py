"""The wizard-status socket: transport only. Reads go through onboarding selectors."""

import asyncio
import json
import logging
import math
import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from onboarding.selectors import format_timestamp, wizard_status_get
from realtime import auth
from realtime.groups import user_group
from realtime.metrics import SOCKET_CONNECTIONS
from realtime.reconcile import registry

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_MESSAGE_TOO_BIG = 1009


def _comparable(status: dict[str, Any]) -> tuple:
    return (status["wizard_complete"], tuple(sorted(status["details"].items())))


class WizardStatusConsumer(AsyncWebsocketConsumer):
    user_id: int | None = None
    group_joined = False
    accepted = False

    async def connect(self) -> None:
        failure = self.scope.get("auth_failure")
        if failure is not None:
            await self.accept()
            code = CLOSE_FORBIDDEN if failure == auth.INACTIVE else CLOSE_UNAUTHENTICATED
            await self.close(code=code)
            return
        user_id = self.scope["user"].pk
        if registry.count(user_id) >= settings.WEBSOCKET_MAX_SOCKETS_PER_USER:
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return

        self.user_id = user_id
        self.known_version = -1
        self.last_sent: tuple | None = None
        self.refreshes: deque[float] = deque()
        self.send_lock = asyncio.Lock()
        registry.add(self)  # right after the count, with no await between: the limit holds
        SOCKET_CONNECTIONS.inc()
        # Join the group before reading the snapshot: a change committed in between is
        # then pushed to this socket instead of falling between the two.
        await self.join_group()
        await self.accept()
        self.accepted = True
        logger.info("User %s connected to wizard-status WebSocket", user_id)
        await self.send_fresh_status(force=True)

    async def join_group(self) -> None:
        try:
            await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
        except Exception:
            # Redis is down: the reconciler keeps this socket current and retries the join.
            logger.warning("User %s socket could not join its group", self.user_id, exc_info=True)
            return
        self.group_joined = True

    async def disconnect(self, code: int) -> None:
        if self.user_id is None:
            return
        registry.remove(self)
        SOCKET_CONNECTIONS.dec()
        if self.group_joined:
            try:
                await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
            except Exception:
                logger.warning("User %s socket could not leave its group", self.user_id)
        logger.info("User %s disconnected from wizard-status WebSocket", self.user_id)
        self.user_id = None

    # Client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        limit = settings.WEBSOCKET_MAX_FRAME_BYTES
        if bytes_data is not None:
            if len(bytes_data) > limit:
                await self.close(code=CLOSE_MESSAGE_TOO_BIG)
                return
            await self.send_error("invalid_message", "Binary frames are not supported.")
            return
        text_data = text_data or ""
        if len(text_data) * 4 > limit and len(text_data.encode("utf-8")) > limit:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("invalid_json", "The frame is not valid JSON.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.send_error("invalid_message", "Send a JSON object with a string 'type'.")
            return
        if message["type"] == "refresh":
            await self.on_refresh()
        elif message["type"] == "ping":
            await self.send(json.dumps({"type": "pong", "timestamp": _now()}))
        else:
            await self.send_error("unknown_type", "Known types are 'refresh' and 'ping'.")

    async def on_refresh(self) -> None:
        max_refreshes, window = settings.WEBSOCKET_REFRESH_LIMIT
        now = time.monotonic()
        while self.refreshes and self.refreshes[0] <= now - window:
            self.refreshes.popleft()
        if len(self.refreshes) >= max_refreshes:
            retry_after = max(1, math.ceil(self.refreshes[0] + window - now))
            await self.send_error(
                "rate_limited", "Too many refreshes; wait and retry.", retry_after=retry_after
            )
            return
        self.refreshes.append(now)
        await self.send_fresh_status(force=True)

    async def send_error(self, code: str, detail: str, **extra: Any) -> None:
        await self.send(json.dumps({"type": "error", "code": code, "detail": detail, **extra}))

    # Server -> client

    async def send_fresh_status(self, *, force: bool = False) -> None:
        status = await database_sync_to_async(wizard_status_get)(user_id=self.user_id)
        await self.deliver_status(status.as_message(), force=force)

    async def deliver_status(self, status: dict[str, Any], *, force: bool = False) -> None:
        """Send a status unless it is older than what this socket knows.

        A newer version with the same content is only noted; `force` (first message,
        refresh) sends even the current version again.
        """
        if self.user_id is None or not self.accepted:
            return  # the first message, read after accept(), will carry this version
        async with self.send_lock:  # the reconciler delivers from another task
            version = status["version"]
            if version < self.known_version or (version == self.known_version and not force):
                return
            comparable = _comparable(status)
            self.known_version = version
            if not force and comparable == self.last_sent:
                return
            self.last_sent = comparable
            await self.send(json.dumps(status))
        if not force:
            logger.info("Wizard status updated for user %s", self.user_id)

    # Group messages from the relay

    async def wizard_status(self, event: dict[str, Any]) -> None:
        await self.deliver_status(event["status"])

    async def wizard_account_deactivated(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_FORBIDDEN)


def _now() -> str:
    return format_timestamp(timezone.now())

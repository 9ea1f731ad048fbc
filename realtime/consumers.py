"""The wizard-status socket: transport only. Reads go through onboarding selectors."""

import asyncio
import json
import logging
import math
import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from onboarding.selectors import format_timestamp, wizard_status_get
from realtime import auth
from realtime.close_codes import (
    CLOSE_FORBIDDEN,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NOT_READING,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNAUTHENTICATED,
)
from realtime.groups import user_group
from realtime.metrics import SOCKET_CONNECTIONS
from realtime.reconcile import registry

logger = logging.getLogger(__name__)


# Answers to its own frames a client may leave unread before the server lets the socket go.
# Only a client that stopped reading gets here: frames wait in this queue only once the
# server's TCP buffers toward it are full.
MAX_UNSENT_FRAMES = 100

# What waits in a socket's queue: a pushed status, a status answered to the client (first
# message, refresh), any other answer (pong, error), the close.
_PUSH, _STATUS, _ANSWER, _CLOSE = "push", "status", "answer", "close"


def _comparable(status: dict[str, Any]) -> tuple:
    return (status["wizard_complete"], tuple(sorted(status["details"].items())))


class WizardStatusConsumer(AsyncWebsocketConsumer):
    """One socket. After the handshake every frame goes out through one writer task, so a
    client that stops reading stalls that task alone: never this consumer's message loop
    (group messages would pile up behind it), never the reconciler, never another socket.
    What waits for such a client is bounded: the newest pushed status, and at most
    MAX_UNSENT_FRAMES answers before the socket is let go."""

    user_id: int | None = None
    group_joined = False
    accepted = False
    closing = False
    writer: asyncio.Task | None = None

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
        self.credentials_generation = self.scope["credentials_generation"]
        self.known_version = -1
        self.last_sent: tuple | None = None
        self.refreshes: deque[float] = deque()
        self.unsent: deque[tuple[str, str | int | None]] = deque()
        self.unsent_ready = asyncio.Event()
        registry.add(self)  # right after the count, with no await between: the limit holds
        SOCKET_CONNECTIONS.inc()
        # Join the group before reading the snapshot: a change committed in between is
        # then pushed to this socket instead of falling between the two.
        await self.join_group()
        await self.accept()
        self.accepted = True
        self.writer = asyncio.create_task(self.write_unsent())
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
        if self.writer is not None:
            self.writer.cancel()
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
            await self.answer(json.dumps({"type": "pong", "timestamp": _now()}))
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
        await self.answer(json.dumps({"type": "error", "code": code, "detail": detail, **extra}))

    # Server -> client: queued here, written by `write_unsent`

    async def answer(self, frame: str, kind: str = _ANSWER) -> None:
        """Queue the answer to a client's frame; let the socket go if it is not reading."""
        if len(self.unsent) >= MAX_UNSENT_FRAMES:
            logger.warning("User %s socket does not read its answers; letting it go", self.user_id)
            await self.disconnect(CLOSE_NOT_READING)
            raise StopConsumer
        self.queue_unsent(kind, frame)

    def queue_unsent(self, kind: str, payload: str | int | None) -> None:
        if self.closing:
            return
        if kind == _PUSH:
            # Only the newest status matters: it replaces a pushed one not yet written,
            # unless a status answered since comes after that one (versions stay in order).
            for index in range(len(self.unsent) - 1, -1, -1):
                queued_kind = self.unsent[index][0]
                if queued_kind == _PUSH:
                    self.unsent[index] = (_PUSH, payload)
                    return
                if queued_kind == _STATUS:
                    break
        self.closing = kind == _CLOSE
        self.unsent.append((kind, payload))
        self.unsent_ready.set()

    async def write_unsent(self) -> None:
        try:
            while True:
                await self.unsent_ready.wait()
                self.unsent_ready.clear()
                while self.unsent:
                    kind, payload = self.unsent.popleft()
                    if kind == _CLOSE:
                        await super().close(code=payload)
                        return
                    await self.send(payload)
        except Exception:  # the client is gone; its disconnect cleans up
            logger.debug("User %s socket could not be written to", self.user_id, exc_info=True)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """After the handshake, behind the frames already queued; never waits for the client."""
        if self.writer is None:
            await super().close(code=code, reason=reason)
        else:
            self.queue_unsent(_CLOSE, code)

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
        # The reconciler delivers from another task: nothing below waits (but for letting go
        # of a client that does not read its answers), so deciding and queueing are one step.
        version = status["version"]
        if version < self.known_version or (version == self.known_version and not force):
            return
        comparable = _comparable(status)
        self.known_version = version
        if not force and comparable == self.last_sent:
            return
        self.last_sent = comparable
        if force:
            await self.answer(json.dumps(status), _STATUS)
            return
        self.queue_unsent(_PUSH, json.dumps(status))
        logger.info("Wizard status updated for user %s", self.user_id)

    # Group messages from the relay

    async def wizard_status(self, event: dict[str, Any]) -> None:
        await self.deliver_status(event["status"])

    async def wizard_account_deactivated(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_FORBIDDEN)

    async def wizard_credentials_revoked(self, event: dict[str, Any]) -> None:
        if self.opened_before(event["generation"]):
            await self.close(code=CLOSE_UNAUTHENTICATED)

    def opened_before(self, credentials_generation: int) -> bool:
        """Whether this socket's credentials are older than the user's `credentials_generation`
        (a socket opened with the new credentials, after the change, stays open)."""
        return self.credentials_generation < credentials_generation


def _now() -> str:
    return format_timestamp(timezone.now())

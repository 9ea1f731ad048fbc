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

from onboarding.quotas import Rule, quota_hit_async
from onboarding.selectors import socket_opening_get, wizard_status_get
from onboarding.status import changed_keys, format_timestamp
from realtime import auth
from realtime.groups import user_group
from realtime.metrics import SOCKET_CONNECTIONS
from realtime.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NOT_READING,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNAUTHENTICATED,
    ErrorCode,
)
from realtime.reconcile import registry
from realtime.socket_leases import socket_lease_give_back, socket_lease_take

logger = logging.getLogger(__name__)


# Answers to its own frames a client may leave unread before the server lets the socket go.
# Only a client that stopped reading gets here: frames wait in this queue only once the
# server's TCP buffers toward it are full.
MAX_UNSENT_FRAMES = 100

# What waits in a socket's queue: a pushed status, a status answered to the client (first
# message, refresh), any other answer (pong, error), the close.
_PUSH, _STATUS, _ANSWER, _CLOSE = "push", "status", "answer", "close"
# Frames that carry no message.
_BINARY, _NOT_JSON = object(), object()


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
        claim: auth.SocketClaim = self.scope["socket_claim"]
        if claim.user_id is None:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        self.user_id = claim.user_id
        # Join the group before reading the snapshot: a change committed in between is then
        # pushed to this socket instead of falling between the two. Pushes wait in the layer
        # until this handler returns.
        await self.join_group()
        # One statement: the first status, and the check of what only the database knows
        # about the credentials (a token's sign-in, the account, the generation).
        try:
            opening = await database_sync_to_async(socket_opening_get)(
                user_id=claim.user_id, sign_in_id=claim.sign_in_id
            )
        except Exception:
            await self.leave_group()  # the handshake fails; its group must not outlive it
            self.user_id = None
            raise
        failure = claim.confirmed_by(opening)
        if failure is not None:
            await self.refuse(
                CLOSE_FORBIDDEN if failure == auth.INACTIVE else CLOSE_UNAUTHENTICATED
            )
            return
        # A client reconnecting in a loop is bounded like one refreshing. Counted once the
        # credentials stand, so a revoked token cannot spend its user's handshakes.
        connect_rule = Rule.parse(settings.WEBSOCKET_CONNECT_LIMIT)
        if await quota_hit_async("socket-connect", str(claim.user_id), connect_rule):
            await self.refuse(CLOSE_TOO_MANY_SOCKETS)
            return
        if not await socket_lease_take(
            user_id=claim.user_id,
            socket=self.channel_name,
            local_count=registry.count(claim.user_id),
        ):
            await self.refuse(CLOSE_TOO_MANY_SOCKETS)
            return

        self.credentials_generation = claim.generation
        self.known_version = -1
        self.last_sent: dict[str, Any] | None = None
        self.messages = LocalWindow(Rule.parse(settings.WEBSOCKET_MESSAGE_LIMIT))
        self.unsent: deque[tuple[str, str | int | None]] = deque()
        self.unsent_ready = asyncio.Event()
        registry.add(self)
        SOCKET_CONNECTIONS.inc()
        await self.accept()
        self.accepted = True
        self.writer = asyncio.create_task(self.write_unsent())
        logger.info("User %s connected to wizard-status WebSocket", claim.user_id)
        await self.deliver_status(opening.status.as_message(), force=True)

    async def refuse(self, code: int) -> None:
        """Complete the handshake and close at once: browsers only see codes after accept."""
        await self.leave_group()
        self.user_id = None
        await self.accept()
        await self.close(code=code)

    async def join_group(self) -> None:
        try:
            await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
        except Exception:
            # Redis is down: the reconciler keeps this socket current and retries the join.
            logger.warning("User %s socket could not join its group", self.user_id, exc_info=True)
            return
        self.group_joined = True

    async def leave_group(self) -> None:
        if not self.group_joined:
            return
        self.group_joined = False
        try:
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
        except Exception:
            logger.warning("User %s socket could not leave its group", self.user_id)

    async def disconnect(self, code: int) -> None:
        if self.writer is not None:
            self.writer.cancel()
        if self.user_id is None:
            return
        registry.remove(self)
        SOCKET_CONNECTIONS.dec()
        await socket_lease_give_back(user_id=self.user_id, socket=self.channel_name)
        await self.leave_group()
        logger.info("User %s disconnected from wizard-status WebSocket", self.user_id)
        self.user_id = None

    # Client -> server

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        limit = settings.WEBSOCKET_MAX_FRAME_BYTES
        if bytes_data is not None:
            if len(bytes_data) > limit:
                await self.close(code=CLOSE_MESSAGE_TOO_BIG)
                return
            await self.answer_message(_BINARY)
            return
        text_data = text_data or ""
        if len(text_data) * 4 > limit and len(text_data.encode("utf-8")) > limit:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.answer_message(_NOT_JSON)
            return
        if isinstance(message, dict) and message.get("type") == "refresh":
            await self.on_refresh()
            return
        await self.answer_message(message)

    async def answer_message(self, message: Any) -> None:
        """Answer a frame other than a refresh: a ping or a bad one.

        These cost no database read, but each is answered: bounded per socket, and past the
        bound one error says when to resume and the rest go unanswered.
        """
        retry_after = self.messages.hit()
        if retry_after:
            if self.messages.first_refusal():
                await self.send_rate_limited("Too many messages; wait and retry.", retry_after)
        elif message is _BINARY:
            await self.send_error("invalid_message", "Binary frames are not supported.")
        elif message is _NOT_JSON:
            await self.send_error("invalid_json", "The frame is not valid JSON.")
        elif not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.send_error("invalid_message", "Send a JSON object with a string 'type'.")
        elif message["type"] == "ping":
            await self.answer(json.dumps({"type": "pong", "timestamp": _now()}))
        else:
            await self.send_error("unknown_type", "Known types are 'refresh' and 'ping'.")

    async def on_refresh(self) -> None:
        """A database read each: limited per user, so reconnecting does not reset it."""
        rule = Rule.parse(settings.WEBSOCKET_REFRESH_LIMIT)
        retry_after = await quota_hit_async("socket-refresh", str(self.user_id), rule)
        if retry_after:
            await self.send_rate_limited("Too many refreshes; wait and retry.", retry_after)
            return
        await self.send_fresh_status(force=True)

    async def send_rate_limited(self, detail: str, retry_after: int) -> None:
        await self.send_error("rate_limited", detail, retry_after=retry_after)

    async def send_error(self, code: ErrorCode, detail: str, **extra: Any) -> None:
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
        self.known_version = version
        if not force and self.last_sent is not None and not changed_keys(self.last_sent, status):
            return
        self.last_sent = status
        if force:
            await self.answer(json.dumps(status), _STATUS)
            return
        self.queue_unsent(_PUSH, json.dumps(status))
        logger.info("Wizard status updated for user %s", self.user_id)

    async def replace_status(self, status: dict[str, Any], *, unless_newer_than: int) -> None:
        """Send `status` although its version is lower than this socket's: the socket holds
        a version the database never had. Skipped if a status arrived since that was noted."""
        if self.known_version != unless_newer_than:
            return
        logger.warning(
            "User %s socket held version %s, ahead of the database's %s; put right",
            self.user_id,
            self.known_version,
            status["version"],
        )
        self.known_version, self.last_sent = -1, None
        await self.deliver_status(status)

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


class LocalWindow:
    """A sliding window of one socket's own frames (no Redis: nothing else shares it)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.times: deque[float] = deque()
        self.refused_since: float | None = None

    def hit(self) -> int:
        """Count a frame: 0 if within the limit, else seconds until one is allowed again."""
        now = time.monotonic()
        window = self.rule.window_seconds
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if len(self.times) >= self.rule.limit:
            return max(1, math.ceil(self.times[0] + window - now))
        self.times.append(now)
        self.refused_since = None
        return 0

    def first_refusal(self) -> bool:
        """Whether this refusal is the first since the last allowed frame."""
        first = self.refused_since is None
        self.refused_since = self.refused_since or time.monotonic()
        return first


def _now() -> str:
    return format_timestamp(timezone.now())

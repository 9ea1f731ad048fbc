"""Real clients of a running stack: a REST user over httpx and a socket over `websockets`.

Every socket keeps every message it received, so a test (or a benchmark) can check ordering
over a whole run, not only the message it waited for.
"""

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from asgiref.sync import sync_to_async
from django.db import connections

PASSWORD = "e2e-Tangerine-Lighthouse-42"
SOCKET_PATH = "/ws/wizard-status/"
REQUIREMENTS = (
    "first_name",
    "last_name",
    "phone_number",
    "business_type",
    "manual_prompt",
    "channel_connected",
)
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def expected_status(*, version: int, met: set[str], wizard_complete: bool = False) -> dict:
    """The contract's status object (without its timestamp) for a user meeting `met`."""
    details = dict.fromkeys(
        (*REQUIREMENTS, "instagram_connected", "telegram_connected"), False
    ) | dict.fromkeys(met, True)
    missing = [name for name in REQUIREMENTS if not details[name]]
    completed = len(REQUIREMENTS) - len(missing)
    return {
        "type": "wizard_status",
        "wizard_complete": wizard_complete,
        "can_complete": not missing,
        "missing_fields": missing,
        "details": details,
        "progress": {
            "completed": completed,
            "total": len(REQUIREMENTS),
            "percent": round(100 * completed / len(REQUIREMENTS)),
        },
        "version": version,
    }


def status_body(status: dict) -> dict:
    """The status without its timestamp (which differs on every read), format checked."""
    body = dict(status)
    timestamp = body.pop("timestamp")
    assert _TIMESTAMP.match(timestamp), timestamp
    return body


def content(status: dict) -> dict:
    """What a status says, regardless of which version said it."""
    body = status_body(status)
    body.pop("version")
    return body


@dataclass
class ApiUser:
    """A user registered through the REST API, holding a Bearer client for that user."""

    id: int
    username: str
    access: str
    http: httpx.AsyncClient

    @classmethod
    async def register(cls, base_url: str) -> "ApiUser":
        username = f"e2e-{uuid.uuid4().hex[:12]}"
        credentials = {"username": username, "password": PASSWORD}
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as anonymous:
            registered = await anonymous.post("/api/v1/auth/register", json=credentials)
            assert registered.status_code == 201, registered.text
            tokens = await anonymous.post("/api/v1/auth/token", json=credentials)
            assert tokens.status_code == 200, tokens.text
        access = tokens.json()["access"]
        http = httpx.AsyncClient(
            base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {access}"}
        )
        return cls(id=registered.json()["id"], username=username, access=access, http=http)

    async def patch_profile(self, **fields: str) -> dict:
        response = await self.http.patch("/api/v1/accounts/me", json=fields)
        assert response.status_code == 200, response.text
        return response.json()

    async def wizard_status(self) -> dict:
        response = await self.http.get("/api/v1/accounts/wizard-status")
        assert response.status_code == 200, response.text
        return response.json()

    async def business_types(self) -> list[str]:
        response = await self.http.get("/api/v1/accounts/business-types")
        assert response.status_code == 200, response.text
        return [choice["value"] for choice in response.json()]

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class LiveSocket:
    """One `/ws/wizard-status/` connection and everything it received, in order."""

    label: str
    connection: Any
    messages: list[dict] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str, *, token: str, label: str) -> "LiveSocket":
        # No protocol pings from the client, like a browser: an idle socket stays idle.
        connection = await websockets.connect(
            f"{url}?token={token}", ping_interval=None, open_timeout=10
        )
        return cls(label=label, connection=connection)

    @property
    def statuses(self) -> list[dict]:
        return [message for message in self.messages if message.get("type") == "wizard_status"]

    @property
    def versions(self) -> list[int]:
        return [status["version"] for status in self.statuses]

    @property
    def latest(self) -> dict | None:
        """The newest status by version: what a client following the guide would show."""
        return max(self.statuses, key=lambda status: status["version"], default=None)

    async def next_message(self, timeout: float) -> dict:
        """The next message; TimeoutError if none arrives within `timeout` seconds."""
        try:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.label}: no message within {timeout:g} s") from None
        message = json.loads(raw)
        self.messages.append(message)
        return message

    async def expect_silence(self, seconds: float) -> None:
        """Assert that nothing at all arrives for `seconds`."""
        try:
            message = await self.next_message(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"{self.label} got {message} where nothing was due")

    async def wait_for_status(self, predicate: Callable[[dict], bool], timeout: float) -> dict:
        """Read messages until the newest status satisfies `predicate`; return it."""
        deadline = time.monotonic() + timeout
        while self.latest is None or not predicate(self.latest):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.label}: no matching status within {timeout:g} s; "
                    f"received {self.messages}"
                )
            try:
                await self.next_message(remaining)
            except TimeoutError:
                continue
        return self.latest

    async def close(self) -> None:
        await self.connection.close()


@sync_to_async(thread_sensitive=False)
def in_django(function, **kwargs):
    """Run ORM or service code from an async test, on a thread whose connections it closes."""
    try:
        return function(**kwargs)
    finally:
        connections.close_all()

"""Shared helpers for the wizard-status socket tests.

Every socket goes through the real `config.asgi.application` (origin check, auth middleware,
router) and the real Redis pub/sub channel layer from the settings. The consumer reads the
database from another thread, so these tests commit their data
(`django_db(transaction=True)`), and the tests' own ORM calls go through
`database_sync_to_async` like the consumer's.
"""

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import jwt
import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone

from config.asgi import application
from onboarding.selectors import wizard_status_get
from tests.conftest import bearer_client, session_client
from tests.factories import sign_in_claims, tokens_for

WS_PATH = "/ws/wizard-status/"
TICKET_URL = "/api/v1/realtime/ticket"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Long enough that the reconciler never runs inside a test that does not ask for it.
# The error frames of contract section 2, as the server words them.
NOT_JSON = {"type": "error", "code": "invalid_json", "detail": "The frame is not valid JSON."}
NOT_A_MESSAGE = {
    "type": "error",
    "code": "invalid_message",
    "detail": "Send a JSON object with a string 'type'.",
}
BINARY = {
    "type": "error",
    "code": "invalid_message",
    "detail": "Binary frames are not supported.",
}
UNKNOWN_TYPE = {
    "type": "error",
    "code": "unknown_type",
    "detail": "Known types are 'refresh' and 'ping'.",
}

RECONCILE_OFF = 60.0
# How long a test waits for something that should happen at once.
PROMPT = 3.0

db_call = database_sync_to_async


@pytest.fixture(autouse=True)
def own_channel_layer_prefix(settings):
    """Pub/sub channels are global to the Redis server (not per database), so other test runs
    on the same server could publish into our groups. A prefix of this test alone keeps the
    layer real but private; changing CHANNEL_LAYERS also drops the cached layer."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["prefix"] = f"wizard-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers


@pytest.fixture(autouse=True)
def reconciler_off(settings):
    """Tests that exercise the reconciler lower the interval themselves, before connecting."""
    settings.WEBSOCKET_RECONCILE_INTERVAL_SECONDS = RECONCILE_OFF


@pytest.fixture(autouse=True)
async def close_consumer_thread_connections():
    """The consumer's reads run in asgiref's one shared thread, whose connection would
    otherwise outlive the test run and keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
async def sockets():
    """Opens sockets; any a test left open (a failed assertion) is disconnected at teardown."""
    opened: list[WebsocketCommunicator] = []

    def make(
        query: str = "", headers: list[tuple[bytes, bytes]] | None = None, path: str = WS_PATH
    ) -> WebsocketCommunicator:
        path = f"{path}?{query}" if query else path
        communicator = WebsocketCommunicator(application, path, headers=headers or [])
        opened.append(communicator)
        return communicator

    yield make
    for communicator in opened:
        if not communicator.future.done():
            await communicator.disconnect()


# Credentials


def mint_ticket(user) -> str:
    """A ticket from the REST endpoint, with a Bearer token, as a browser client gets one."""
    response = bearer_client(user).post(TICKET_URL)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {"ticket": body["ticket"], "expires_in": settings.WEBSOCKET_TICKET_TTL_SECONDS}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["ticket"])
    return body["ticket"]


def access_token(user) -> str:
    return tokens_for(user).access


def refresh_token(user) -> str:
    return tokens_for(user).refresh


def hand_built_token(user_id: int, *, key: str | None = None, algorithm="HS256", **claims) -> str:
    """A JWT with the claims the service issues, any of them overridden."""
    now = timezone.now()
    payload = {
        "sub": str(user_id),
        "type": "access",
        "iat": now,
        "exp": now + settings.JWT_ACCESS_TOKEN_LIFETIME,
        "jti": uuid.uuid4().hex[:16],
        **sign_in_claims(user_id),
        **claims,
    }
    signing_key = settings.JWT_SIGNING_KEY if key is None else key
    return jwt.encode(payload, signing_key if algorithm != "none" else None, algorithm=algorithm)


def session_cookie(user) -> bytes:
    """The `cookie` header of a browser logged in through POST /api/v1/auth/login."""
    client: Client = session_client(user)
    session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value
    return f"csrftoken={csrf}; {settings.SESSION_COOKIE_NAME}={session_id}".encode()


# Receiving


async def receive_json(communicator: WebsocketCommunicator, timeout: float = PROMPT) -> Any:
    return json.loads(await communicator.receive_from(timeout))


async def receive_close(communicator: WebsocketCommunicator, timeout: float = PROMPT) -> dict:
    """The next output, whatever it is: a close with nothing before it compares equal to
    {"type": "websocket.close", "code": ...}; a status sent before the close would not."""
    return await communicator.receive_output(timeout)


async def assert_nothing_queued(communicator: WebsocketCommunicator) -> None:
    """Nothing the socket sent is left unread: a fence, not a wait.

    One socket's frames arrive in order, and the consumer answers a ping behind everything
    it queued before, so if the next frame is the pong, nothing came before it. It proves
    nothing about what has not reached the consumer yet (a Redis pub/sub push still in
    flight, a reconciler round to come): those need a timed wait. Each fence is a frame
    against the socket's WEBSOCKET_MESSAGE_LIMIT.
    """
    await communicator.send_json_to({"type": "ping"})
    assert (await receive_json(communicator))["type"] == "pong"


def closed(code: int) -> dict:
    return {"type": "websocket.close", "code": code}


async def connect(communicator: WebsocketCommunicator) -> bool:
    connected, _ = await communicator.connect(timeout=PROMPT)
    return connected


def without_timestamp(message: dict) -> dict:
    return {key: value for key, value in message.items() if key != "timestamp"}


def parse_timestamp(value: str) -> datetime:
    assert TIMESTAMP.fullmatch(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def current_status(user_id: int) -> dict:
    """The status the database holds now, as the socket would send it, minus the timestamp."""
    status = await db_call(wizard_status_get)(user_id=user_id)
    return without_timestamp(status.as_message())


async def assert_status_is_current(message: dict, user_id: int, *, since: datetime) -> None:
    """`message` is exactly the user's current status, computed no earlier than `since`."""
    assert without_timestamp(message) == await current_status(user_id)
    assert to_millis(since) <= parse_timestamp(message["timestamp"]) <= timezone.now()


async def eventually(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05
) -> None:
    """Poll until `predicate` holds; fail once the deadline passes."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)

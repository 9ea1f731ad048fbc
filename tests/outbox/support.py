"""Helpers of the outbox relay tests, also used by the history and metrics tests.

What the relay pushed is read the way a web process receives it: a Redis pub/sub
subscription to the users' group channels under a channel-layer prefix of the test's own
(pub/sub channels are global to the Redis server), decoded by the channel layer.
"""

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from channels.layers import get_channel_layer
from django.conf import settings

from onboarding.models import User, WizardStatusHistory
from onboarding.selectors import wizard_status_get
from outbox.models import OutboxEvent
from outbox.nudge import RELAY_REQUESTED_KEY
from outbox.relay import RelayReport, outbox_relay

T = TypeVar("T")

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
CELERY_QUEUE = "celery"


def poll_until(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if outcome:
            return outcome
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {outcome!r})")
        threading.Event().wait(interval)


def relay_when_due(*, timeout: float = 10.0) -> RelayReport:
    """Run the relay until a run claims something (rows become due); return that run's report."""

    def attempt() -> RelayReport | None:
        report = outbox_relay()
        return report if report.claimed else None

    return poll_until(attempt, timeout=timeout)


def use_channel_layer(settings, *, prefix: str | None = None, address: str | None = None) -> str:
    """Point the channel layer (and so the relay's broadcast) at `address` under `prefix`.

    Changing CHANNEL_LAYERS also drops Channels' cached layer. Returns the prefix in use.
    """
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    if prefix is not None:
        config["prefix"] = prefix
    if address is not None:
        config["hosts"] = [{**config["hosts"][0], "address": address}]
    settings.CHANNEL_LAYERS = layers
    return config["prefix"]


def real_redis_address() -> str:
    return settings.REDIS_URL


class PushWatch:
    """Every group message published under one channel-layer prefix, as a web process gets it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.group_channel_start = f"{prefix}__group__"
        self.marker = f"{prefix}__test-marker"
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(f"{self.group_channel_start}*")
        self.pubsub.subscribe(self.marker)
        confirmed = set()
        deadline = time.monotonic() + 10
        while confirmed != {"psubscribe", "subscribe"}:
            assert time.monotonic() < deadline, "subscriptions were not confirmed"
            message = self.pubsub.get_message(timeout=0.5)
            if message is not None:
                confirmed.add(message["type"])

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """(group, event) of everything published since the last call, in arrival order.

        Redis delivers one connection's messages in publish order, so publishing a marker and
        reading up to it collects everything published before, with no waiting on silence.
        """
        token = uuid.uuid4().hex
        self.client.publish(self.marker, token)
        layer = get_channel_layer()
        received = []
        deadline = time.monotonic() + 10
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the marker did not come back"
            message = self.pubsub.get_message(timeout=min(remaining, 1.0))
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "message" and channel == self.marker:
                if message["data"].decode() == token:
                    return received
                continue
            if message["type"] == "pmessage":
                group = channel.removeprefix(self.group_channel_start)
                received.append((group, layer.deserialize(message["data"])))

    def take_by_group(self) -> dict[str, list[dict[str, Any]]]:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for group, event in self.take():
            by_group.setdefault(group, []).append(event)
        return by_group

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@contextmanager
def watching_pushes(settings) -> Iterator[PushWatch]:
    prefix = use_channel_layer(settings, prefix=f"relay-test-{uuid.uuid4().hex[:12]}")
    watch = PushWatch(prefix)
    try:
        yield watch
    finally:
        watch.close()


@contextmanager
def clean_relay_nudges() -> Iterator[redis.Redis]:
    """No relay flag and no queued Celery task before or after: each test starts from zero."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(RELAY_REQUESTED_KEY, CELERY_QUEUE)
    try:
        yield client
    finally:
        client.delete(RELAY_REQUESTED_KEY, CELERY_QUEUE)
        client.close()


def status_event(status: dict[str, Any]) -> dict[str, Any]:
    return {"type": "wizard.status", "status": status}


def without_timestamp(status: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if key != "timestamp"}


def current_status(user: User) -> dict[str, Any]:
    """The user's status as the contract's object, minus the moment it was computed."""
    return without_timestamp(wizard_status_get(user_id=user.pk).as_message())


def outbox_state(user: User | None = None) -> list[dict[str, Any]]:
    rows = OutboxEvent.objects.order_by("id")
    if user is not None:
        rows = rows.filter(user=user)
    return list(
        rows.values(
            "id",
            "version",
            "attempts",
            "claimed_until",
            "relayed_at",
            "failed_at",
            "last_error",
            "next_attempt_at",
        )
    )


def history_of(user: User) -> list[dict[str, Any]]:
    return list(
        WizardStatusHistory.objects.filter(user=user)
        .order_by("-version")
        .values("version", "status", "changed", "causes", "occurred_at", "recorded_at")
    )

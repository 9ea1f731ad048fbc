"""Fixtures of the outbox relay tests: the pushes a web process would get, clean nudges."""

from collections.abc import Iterator

import pytest
import redis

from tests.outbox.support import PushWatch, clean_relay_nudges, watching_pushes


@pytest.fixture
def pushes(settings) -> Iterator[PushWatch]:
    """Every status the relay publishes during the test, under a channel-layer prefix of its own."""
    with watching_pushes(settings) as watch:
        yield watch


@pytest.fixture
def nudges() -> Iterator[redis.Redis]:
    """Committed writes nudge the relay through Redis; leave no flag or task behind."""
    with clean_relay_nudges() as client:
        yield client

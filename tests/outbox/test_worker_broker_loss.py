"""A relay worker outlives its broker: Redis dies and comes back, the worker relays on.

Found by the fault suite (tests/faults): a worker whose broker connection dropped while it
held a fetched message waiting for a busy pool child exited with "Unrecoverable error:
AttributeError('NoneType' object has no attribute 'hostname')" (Celery 5.7 closes the
connection after collecting it, and kombu's ack emulation then restores the unacked message
through a transport that is gone). Under `scripts/run` (honcho) that takes the whole stack
down. The real worker process runs here, on a private Redis this test kills.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from kombu import Connection

from outbox.tasks import relay_outbox
from tests.e2e.harness import Harness, ManagedProcess, database_url, wait_until
from tests.faults.cluster import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis.create(workdir=tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture
def worker(redis_server: PrivateRedis, tmp_path: Path) -> Iterator[ManagedProcess]:
    """The Procfile's worker (two pool children) with the private Redis as its broker."""
    harness = Harness(
        database_url=database_url(settings.DATABASES["default"]),
        redis_url=redis_server.url,
        workdir=tmp_path / "processes",
        extra_env={"CELERY_BROKER_URL": redis_server.url},
    )
    [worker] = harness.launch([harness.add_worker(concurrency=2)])
    yield worker
    harness.stop_all()


def send_relay_tasks(broker_url: str, count: int) -> None:
    with Connection(broker_url) as broker:
        for _ in range(count):
            relay_outbox.apply_async(connection=broker)


def log_count(worker: ManagedProcess, text: str) -> int:
    return worker.output().count(text)


def test_worker_holding_a_fetched_message_survives_the_broker_dying(redis_server, worker):
    with transaction.atomic(), connection.cursor() as cursor:
        # Both pool children block on their claim; the third task is fetched and waits.
        cursor.execute("LOCK TABLE outbox_outboxevent IN ACCESS EXCLUSIVE MODE")
        send_relay_tasks(redis_server.url, 3)
        wait_until(lambda: log_count(worker, " received") == 3, 20, describe="3 tasks fetched")

        redis_server.kill()
        wait_until(
            lambda: log_count(worker, "Connection to broker lost") == 1,
            20,
            describe="the worker noticing",
        )
    redis_server.start()

    wait_until(
        lambda: log_count(worker, "Connected to redis") == 2 or not worker.alive,
        30,
        describe="the worker reconnecting",
    )
    assert "Unrecoverable error" not in worker.output()
    assert worker.alive
    # ...and it consumes again: after the two blocked tasks, a new one is relayed.
    wait_until(lambda: log_count(worker, "succeeded in") >= 2, 20, describe="blocked tasks")
    succeeded = log_count(worker, "succeeded in")
    send_relay_tasks(redis_server.url, 1)
    wait_until(lambda: log_count(worker, "succeeded in") > succeeded, 20, describe="a relay after")

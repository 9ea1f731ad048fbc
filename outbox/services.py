"""The outbox's public services: enqueue in the writer's transaction, retry, purge.

The relay that drains the rows is `outbox.relay`; the nudge that wakes it, `outbox.nudge`.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from outbox.models import Actor, OutboxEvent, Topic
from outbox.nudge import relay_request


def outbox_enqueue(
    *,
    user_id: int,
    topic: Topic,
    version: int,
    actor: Actor,
    payload: dict[str, Any] | None = None,
) -> OutboxEvent:
    """Insert one outbox row. Must run inside the transaction that made the change."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_enqueue must run inside the transaction of the change")
    event = OutboxEvent.objects.create(
        user_id=user_id,
        topic=topic,
        version=version,
        actor_kind=actor.kind,
        actor_id=actor.id,
        payload=payload or {},
    )
    transaction.on_commit(relay_request, robust=True)
    return event


def outbox_retry(*, event_ids: list[int]) -> int:
    """Put failed events back in the queue, due now, with a fresh attempt count."""
    return OutboxEvent.objects.filter(pk__in=event_ids, failed_at__isnull=False).update(
        failed_at=None, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )


def outbox_purge(*, older_than: timedelta | None = None, batch_size: int | None = None) -> int:
    """Delete relayed rows past the retention period, in bounded batches. Never pending ones."""
    retention = settings.OUTBOX_RETENTION if older_than is None else older_than
    cutoff = timezone.now() - retention
    batch_size = batch_size or settings.OUTBOX_PURGE_BATCH_SIZE
    deleted_total = 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(relayed_at__isnull=False, relayed_at__lt=cutoff)
            .order_by("relayed_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted_total
        deleted, _ = OutboxEvent.objects.filter(pk__in=ids, relayed_at__isnull=False).delete()
        deleted_total += deleted

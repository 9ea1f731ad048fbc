"""Writing outbox rows. Relaying them lives beside this, in the same module, from the relay on."""

from typing import Any

from django.db import connection
from django.utils import timezone

from outbox.models import OutboxEvent, Topic


def outbox_enqueue(
    *, user_id: int, topic: Topic, version: int, payload: dict[str, Any] | None = None
) -> OutboxEvent:
    """Insert one outbox row. Must run inside the transaction that made the change."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_enqueue must run inside the transaction of the change")
    return OutboxEvent.objects.create(
        user_id=user_id, topic=topic, version=version, payload=payload or {}
    )


def outbox_retry(*, event_ids: list[int]) -> int:
    """Put failed events back in the queue, due now, with a fresh attempt count."""
    return OutboxEvent.objects.filter(pk__in=event_ids, failed_at__isnull=False).update(
        failed_at=None, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )

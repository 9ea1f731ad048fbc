"""The relay: claim pending outbox rows, record and push what they change, then settle.

Claim, send, settle are three steps in two short transactions: rows are claimed with
`SELECT ... FOR UPDATE SKIP LOCKED` and stamped `claimed_until`, and the wizard records the
statuses they affect in its history, in one transaction; after its commit the statuses are
pushed with no lock held, and only then are the rows marked relayed (or rescheduled). A
relay that dies in between leaves a claim that expires, and the rows are relayed again: a
duplicate push of the same version, which sockets ignore.

Both transactions commit without waiting for the disk (`commit_without_flush`). They write
only relay bookkeeping: claims, history entries, settled rows. If the database crashes and
loses its last commits, those rows are simply pending again and are relayed once more with
the same version, which sockets ignore. A lost history entry is recorded again on that retry;
a later durable commit would have flushed it. The data changes themselves are committed by
the web process with full durability.

What to push is the wizard's business: the relay asks `onboarding.services` through one
function, `wizard_status_pushes_record`, and turns its answer into socket events.
"""

import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from onboarding.services import StatusPush, wizard_status_pushes_record
from onboarding.sql import commit_without_flush, db_datetime, rows_by_name, skip_locked
from outbox import metrics, nudge
from outbox.models import OutboxEvent
from realtime.broadcast import (
    broadcast_to_users,
    credentials_revoked_event,
    deactivated_event,
    status_event,
)

logger = logging.getLogger(__name__)

_TRANSIENT_ERRORS = (redis.RedisError, OperationalError, InterfaceError, OSError, TimeoutError)


def backoff_delay(attempts: int) -> timedelta:
    """Capped exponential backoff with equal jitter."""
    # Transient failures retry forever, so `attempts` is unbounded, and past 2**1023 the
    # factor no longer converts to a float (OverflowError); 2**64 is past any cap already.
    exponent = min(max(attempts - 1, 0), 64)
    ceiling = min(
        settings.OUTBOX_BACKOFF_CAP_SECONDS,
        settings.OUTBOX_BACKOFF_BASE_SECONDS * 2**exponent,
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


_CLAIM_SQL = """
    UPDATE {table} SET claimed_until = %s, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM {table}
        WHERE relayed_at IS NULL AND failed_at IS NULL AND next_attempt_at <= %s
          AND (claimed_until IS NULL OR claimed_until < %s) {only_ids}
        ORDER BY next_attempt_at, id
        LIMIT %s
        {lock}
    )
    RETURNING id, user_id, topic, version, actor_kind, actor_id, created_at, attempts
"""


def _claim_rows(*, batch_size: int, event_ids: Sequence[int] | None = None) -> list[OutboxEvent]:
    """Claim due pending rows that no live relay holds; skip rows another relay has locked.

    One statement: `SELECT ... FOR UPDATE SKIP LOCKED` picks the rows (using the partial
    index on pending rows) and the enclosing UPDATE stamps them. Written by hand because the
    ORM needs two statements and costs more than the database. Runs in the caller's
    transaction.
    """
    now = timezone.now()
    claimed_until = now + timedelta(seconds=settings.OUTBOX_CLAIM_TIMEOUT_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = [adapt(claimed_until), adapt(now), adapt(now)]
    only_ids = ""
    if event_ids is not None:
        only_ids = f"AND id IN ({', '.join(['%s'] * len(event_ids))})"
        params += event_ids
    sql = _CLAIM_SQL.format(
        table=OutboxEvent._meta.db_table,
        only_ids=only_ids,
        lock=skip_locked(),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, batch_size])
        rows = rows_by_name(cursor)
    # The RETURNING columns are the model's own field names.
    return [
        OutboxEvent(**{**row, "created_at": db_datetime(row["created_at"])})
        for row in sorted(rows, key=lambda row: row["id"])
    ]


def outbox_claim(*, batch_size: int) -> list[OutboxEvent]:
    """Claim due pending rows in a transaction of their own, and nothing more."""
    with transaction.atomic():
        return _claim_rows(batch_size=batch_size)


@dataclass
class RelayReport:
    claimed: int = 0
    relayed: int = 0
    pushed: int = 0
    rescheduled: int = 0
    failed: int = 0

    def add(self, other: "RelayReport") -> None:
        for name in ("claimed", "relayed", "pushed", "rescheduled", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _ClaimedBatch:
    events: list[OutboxEvent]
    push_events: dict[int, list[dict[str, Any]]]


class _RecordFailed(Exception):
    """Claiming or recording failed and was rolled back: these rows are not claimed."""

    def __init__(self, events: list[OutboxEvent], error: Exception) -> None:
        super().__init__(str(error))
        self.events = events
        self.error = error


def _claim_and_record(*, batch_size: int, event_ids: Sequence[int] | None = None) -> _ClaimedBatch:
    """The first of the relay's two short transactions: claim rows, record their statuses.

    No network I/O but the database's: the push happens after the commit, with no lock held.
    """
    events: list[OutboxEvent] = []
    try:
        with transaction.atomic():
            events = _claim_rows(batch_size=batch_size, event_ids=event_ids)
            if not events:  # wrote nothing, so its commit flushes nothing
                return _ClaimedBatch(events=[], push_events={})
            commit_without_flush()
            pushes = wizard_status_pushes_record(events_by_user=_by_user(events))
    except Exception as error:
        if not events:
            raise
        raise _RecordFailed(events, error) from error
    return _ClaimedBatch(events=events, push_events=_socket_events(pushes))


def _socket_events(pushes: Sequence[StatusPush]) -> dict[int, list[dict[str, Any]]]:
    """Per user, in order: close the sockets a push ends, then send the new status."""
    events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for push in pushes:
        if push.deactivated:
            events[push.user_id].append(deactivated_event())
        if push.revoked_generation is not None:
            generation = push.revoked_generation
            events[push.user_id].append(credentials_revoked_event(generation=generation))
        if push.status is not None:
            events[push.user_id].append(status_event(push.status.as_message()))
    return dict(events)


def _by_user(events: Sequence[OutboxEvent]) -> dict[int, list[OutboxEvent]]:
    by_user: dict[int, list[OutboxEvent]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    return by_user


def _relay_next_batch(*, batch_size: int) -> RelayReport:
    """Claim and record, push, settle. An empty report means nothing was due."""
    started = time.perf_counter()
    try:
        batch = _claim_and_record(batch_size=batch_size)
    except _RecordFailed as failure:
        report = _relay_user_by_user(failure)
    else:
        if not batch.events:
            return RelayReport()
        report = _push_and_settle(batch)
    metrics.RELAY_BATCH_SECONDS.observe(time.perf_counter() - started)
    return report


def _relay_user_by_user(failure: _RecordFailed) -> RelayReport:
    """Something about one user's data failed the batch: relay users one by one.

    The failed transaction claimed nothing, so each user's rows are claimed again on their
    own; one user's bad data then holds up no one, and its rows count an attempt.
    """
    report = RelayReport(claimed=len(failure.events))
    by_user = _by_user(failure.events)
    if isinstance(failure.error, _TRANSIENT_ERRORS) or len(by_user) == 1:
        _reschedule(failure.events, failure.error, report, claimed=False)
        return report
    for user_events in by_user.values():
        try:
            batch = _claim_and_record(
                batch_size=len(user_events), event_ids=[event.pk for event in user_events]
            )
        except _RecordFailed as user_failure:
            _reschedule(user_failure.events, user_failure.error, report, claimed=False)
            continue
        if not batch.events:
            continue  # another relay took them meanwhile
        outcome = _push_and_settle(batch)
        outcome.claimed = 0
        report.add(outcome)
    return report


def _push_and_settle(batch: _ClaimedBatch) -> RelayReport:
    report = RelayReport(claimed=len(batch.events))
    try:
        broadcast_to_users(batch.push_events)
    except Exception as error:
        _reschedule(batch.events, error, report, claimed=True)
        return report
    report.pushed = len(batch.push_events)
    metrics.PUSHES.inc(report.pushed)
    # A transaction of its own, for `SET LOCAL`: a session setting would outlive it.
    with transaction.atomic():
        commit_without_flush()
        OutboxEvent.objects.filter(pk__in=[event.pk for event in batch.events]).update(
            relayed_at=timezone.now(), claimed_until=None, last_error=""
        )
    report.relayed = len(batch.events)
    metrics.RELAYED.inc(report.relayed)
    return report


def _reschedule(
    events: Sequence[OutboxEvent], error: Exception, report: RelayReport, *, claimed: bool
) -> None:
    """Retry later. Infrastructure outages retry forever; anything else fails after N tries.

    `claimed` says whether the rows are still ours (the push failed after the claim
    committed) or were let go with a rolled-back claim, whose attempt is counted here; such
    rows are left alone if another relay has claimed them since.
    """
    transient = isinstance(error, _TRANSIENT_ERRORS)
    description = f"{type(error).__name__}: {error}"[:2000]
    logger.log(
        logging.WARNING if transient else logging.ERROR,
        "Relay of %d outbox events failed: %s",
        len(events),
        description,
        exc_info=None if transient else error,
    )
    now = timezone.now()
    try:
        for event in events:
            rows = OutboxEvent.objects.filter(pk=event.pk, relayed_at__isnull=True)
            changes: dict[str, Any] = {"claimed_until": None, "last_error": description}
            if not claimed:
                rows = rows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                changes["attempts"] = F("attempts") + 1
            if not transient and event.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
                rows.update(failed_at=now, **changes)
                report.failed += 1
                metrics.RELAY_FAILED.inc()
            else:
                rows.update(next_attempt_at=now + backoff_delay(event.attempts), **changes)
                report.rescheduled += 1
                metrics.RELAY_RETRIES.labels(
                    metrics.RETRY_TRANSIENT if transient else metrics.RETRY_ERROR
                ).inc()
    except DatabaseError:
        # The database is gone too: the claims expire and the rows are claimed again.
        logger.warning("Could not reschedule outbox events", exc_info=True)


def outbox_relay(*, batch_size: int | None = None, time_budget: float | None = None) -> RelayReport:
    """Relay due pending rows in batches until one comes back short or the budget is spent."""
    batch_size = batch_size or settings.OUTBOX_RELAY_BATCH_SIZE
    budget = settings.OUTBOX_RELAY_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    total = RelayReport()
    while True:
        report = _relay_next_batch(batch_size=batch_size)
        total.add(report)
        if report.claimed < batch_size or time.monotonic() >= deadline:
            return total


def outbox_relay_until_idle(
    *, time_budget: float | None = None, idle_wait: float = 0.0
) -> RelayReport:
    """The nudged relay: claim and relay until a claim finds nothing, then clear the flag.

    While the flag is up, commits queue no task of their own (`nudge.relay_request`): this loop
    claims their rows, so a steady stream of writes is relayed by one run in batches instead
    of one task per write. With `idle_wait`, a run that found nothing waits that long for a
    commit's wake-up token and claims again at once, without a Celery round trip. After the
    flag is cleared one more claim picks up whatever committed before the clear (its nudge
    found the flag up); a commit after the clear queues a task. A run that spends its budget
    while commits come hands over to a new task, queued before this one ends.
    """
    batch_size = settings.OUTBOX_RELAY_BATCH_SIZE
    budget = settings.OUTBOX_RELAY_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    total = RelayReport()
    flag_cleared = False
    while True:
        report = _relay_next_batch(batch_size=batch_size)
        total.add(report)
        if report.claimed:
            if time.monotonic() >= deadline:
                return _hand_over(total)
            continue
        if flag_cleared:
            return total
        if idle_wait and nudge.wait_for_wake_up(until=min(deadline, time.monotonic() + idle_wait)):
            continue
        if total.claimed and time.monotonic() >= deadline:
            # Busy until the wait ran into the budget: the successor is queued now, while
            # nothing waits for it, not by the next commit (a Celery hop behind it).
            return _hand_over(total)
        nudge.relay_request_clear()
        flag_cleared = True


def _hand_over(total: RelayReport) -> RelayReport:
    nudge.relay_request_clear()
    nudge.relay_request()
    return total

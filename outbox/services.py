"""The outbox: enqueue in the writer's transaction, then claim, relay and settle.

Claim, send, settle are three steps in two short transactions: rows are claimed with
`SELECT ... FOR UPDATE SKIP LOCKED` and stamped `claimed_until`, and the statuses they
affect are read and recorded in the history, in one transaction; after its commit the
statuses are pushed with no lock held, and only then are the rows marked relayed (or
rescheduled). A relay that dies in between leaves a claim that expires, and the rows are
relayed again: a duplicate push of the same version, which sockets ignore.
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

# Module imports, not names: onboarding.services imports this module for outbox_enqueue.
from onboarding import selectors as onboarding_selectors
from onboarding import services as onboarding_services
from outbox import metrics
from outbox.models import Actor, OutboxEvent, Topic
from realtime.broadcast import (
    broadcast_to_users,
    credentials_revoked_event,
    deactivated_event,
    status_event,
)

logger = logging.getLogger(__name__)

RELAY_REQUESTED_KEY = "wizard:outbox:relay-requested"
RELAY_WAKE_KEY = "wizard:outbox:relay-wake"
RELAY_FLAG_TTL_MS = 5000  # a relay that died with the flag up holds nudges back this long
_TRANSIENT_ERRORS = (redis.RedisError, OperationalError, InterfaceError, OSError, TimeoutError)
_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
    return _redis_client


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


def relay_request() -> None:
    """Nudge the relay right after a commit, debounced.

    The first nudge while no relay task is queued or running queues one and raises a flag.
    Every nudge also leaves a wake-up token: a task that found nothing more to claim waits a
    moment for one (`outbox_relay_until_idle`) and claims again at once, with no new task.
    One round trip to Redis, a Celery message only when the flag was down. If the nudge is
    lost (Redis down, process killed), the beat sweep relays.
    """
    pipe = _redis().pipeline(transaction=False)
    pipe.set(RELAY_REQUESTED_KEY, 1, nx=True, px=RELAY_FLAG_TTL_MS)
    pipe.lpush(RELAY_WAKE_KEY, 1)
    pipe.ltrim(RELAY_WAKE_KEY, 0, 0)  # one token says it all
    flag_raised, _, _ = pipe.execute()
    if not flag_raised:
        return
    from outbox.tasks import relay_outbox

    relay_outbox.apply_async(expires=10)


def relay_request_clear() -> None:
    try:
        _redis().delete(RELAY_REQUESTED_KEY)
    except redis.RedisError:
        logger.warning("Could not clear the relay request flag", exc_info=True)


def _wait_for_wake_up(*, until: float) -> bool:
    """Wait for a commit's wake-up token until `until` (monotonic); keep the flag up meanwhile."""
    client = _redis()
    try:
        while (left := until - time.monotonic()) > 0:
            client.pexpire(RELAY_REQUESTED_KEY, RELAY_FLAG_TTL_MS)
            # Redis reads a timeout that rounds to 0 ms as "forever".
            if client.blpop([RELAY_WAKE_KEY], timeout=max(min(left, 0.5), 0.01)):
                return True
    except redis.RedisError:
        logger.warning("Could not wait for relay wake-ups", exc_info=True)
    return False


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
        lock="FOR UPDATE SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, batch_size])
        rows = cursor.fetchall()
    return [
        OutboxEvent(
            id=event_id,
            user_id=user_id,
            topic=topic,
            version=version,
            actor_kind=actor_kind,
            actor_id=actor_id,
            created_at=onboarding_selectors.db_datetime(created_at),
            attempts=attempts,
        )
        for event_id, user_id, topic, version, actor_kind, actor_id, created_at, attempts in sorted(
            rows
        )
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

    Each user's status is read once for all of its claimed rows, after taking that user's
    turn (see `_take_turns_with_other_relays`), together with the user's newest history
    entry, and recorded if it changed. No network I/O but the database's: the push happens
    after the commit, with no lock held.
    """
    events: list[OutboxEvent] = []
    try:
        with transaction.atomic():
            events = _claim_rows(batch_size=batch_size, event_ids=event_ids)
            if not events:
                return _ClaimedBatch(events=[], push_events={})
            by_user = _by_user(events)
            _take_turns_with_other_relays(user_ids=list(by_user))
            statuses, latest = onboarding_selectors.wizard_statuses_with_history_get(
                user_ids=list(by_user)
            )
            changes = [
                _status_change(status, by_user[user_id]) for user_id, status in statuses.items()
            ]
            to_push = onboarding_services.wizard_status_history_record(
                changes=changes, latest=latest
            )
    except Exception as error:
        if not events:
            raise
        raise _RecordFailed(events, error) from error
    return _ClaimedBatch(events=events, push_events=_push_events(statuses, by_user, to_push))


def _status_change(
    status: onboarding_selectors.WizardStatus, events: list[OutboxEvent]
) -> "onboarding_services.StatusChange":
    """What the history says of a status: the changes behind it and who made them.

    A revocation of credentials changes no onboarding data: it is behind no status.
    """
    data_events = [event for event in events if event.topic != Topic.CREDENTIALS_REVOKED]
    actors = list(dict.fromkeys(event.actor for event in data_events))
    return onboarding_services.StatusChange(
        status=status,
        causes=sorted({event.topic for event in data_events}),
        actors=[actor.as_dict() for actor in actors],
        occurred_at=min(event.created_at for event in data_events or events),
    )


def _push_events(
    statuses: dict[int, onboarding_selectors.WizardStatus],
    by_user: dict[int, list[OutboxEvent]],
    to_push: list[onboarding_selectors.WizardStatus],
) -> dict[int, list[dict[str, Any]]]:
    """Per user, in order: close the sockets of revoked credentials, then the new status.

    A deactivated user's sockets all close (4403) and get nothing else.
    """
    push_events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for user_id, status in statuses.items():
        if not status.is_active:
            push_events[user_id].append(deactivated_event())
        elif any(event.topic == Topic.CREDENTIALS_REVOKED for event in by_user[user_id]):
            generation = status.credentials_generation
            push_events[user_id].append(credentials_revoked_event(generation=generation))
    for status in to_push:
        if status.is_active:
            push_events[status.user_id].append(status_event(status.as_message()))
    return dict(push_events)


def _take_turns_with_other_relays(*, user_ids: Sequence[int]) -> None:
    """Relays of the same user read its status and record it one after the other.

    Otherwise a relay holding an older status could record it after a relay with a newer one
    compared against the history as it stood, found no change and recorded and pushed nothing:
    the history would end on the older status and sockets show it until the reconciler runs.
    Transaction-scoped advisory locks keyed by user id, taken in id order (no deadlock); the
    status is read after them, so it is at least as new as what the previous relay recorded.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(id) FROM unnest(%s::bigint[]) AS id",
            [sorted(user_ids)],
        )


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
    # One statement in autocommit: no transaction of its own to open and close.
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

    While the flag is up, commits queue no task of their own (`relay_request`): this loop
    claims their rows, so a steady stream of writes is relayed by one run in batches instead
    of one task per write. With `idle_wait`, a run that found nothing waits that long for a
    commit's wake-up token and claims again at once, without a Celery round trip. After the
    flag is cleared one more claim picks up whatever committed before the clear (its nudge
    found the flag up); a commit after the clear queues a task. A run that spends its budget
    hands over to a new task.
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
                relay_request_clear()
                relay_request()
                return total
            continue
        if flag_cleared:
            return total
        if idle_wait and _wait_for_wake_up(until=min(deadline, time.monotonic() + idle_wait)):
            continue
        relay_request_clear()
        flag_cleared = True


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

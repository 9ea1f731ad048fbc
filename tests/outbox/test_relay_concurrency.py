"""Relays racing each other, locks held elsewhere, writes landing mid-push, relays that die.

Each relay runs in a thread on its own database connection, against committed data
(`transactional_db`). A push "in flight" is a real one held up on its way to Redis by a TCP
proxy the test controls.
"""

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from onboarding import services
from onboarding.models import WizardStatusHistory
from onboarding.selectors import wizard_statuses_get
from outbox.models import OutboxEvent, Topic
from outbox.nudge import RELAY_REQUESTED_KEY, relay_request
from outbox.relay import RelayReport, outbox_claim, outbox_relay, outbox_relay_until_idle
from realtime.groups import user_group
from tests import concurrency
from tests.factories import make_user
from tests.outbox.support import (
    current_status,
    history_of,
    outbox_state,
    poll_until,
    relay_when_due,
    status_event,
    use_channel_layer,
    without_timestamp,
)

# Committed writes nudge the relay through Redis: `nudges` leaves no flag or task behind.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("nudges")]


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start `work` on a thread (so on a database connection of its own)."""
    running = concurrency.in_thread(work)
    return running.thread, running.outcome


def holding_in_thread(
    take_lock: Callable[[], Any],
) -> tuple[threading.Thread, dict[str, Any], threading.Event, threading.Event]:
    """On a connection of its own, take a lock in a transaction and hold it until released.

    Returns the thread, its outcome ("released" once done), the event set once the lock is
    held, and the event that releases it.
    """
    locked, release = threading.Event(), threading.Event()

    def hold() -> str:
        with transaction.atomic():
            take_lock()
            locked.set()
            assert release.wait(timeout=30)
        return "released"

    holder, outcome = in_thread(hold)
    return holder, outcome, locked, release


def run_behind_barrier(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker at the same moment; return each one's result or exception."""
    barrier = threading.Barrier(len(workers))

    def released(work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            barrier.wait(timeout=10)
            return work()

        return run

    started = [in_thread(released(work)) for work in workers]
    outcomes = []
    for thread, outcome in started:
        thread.join(timeout=60)
        assert not thread.is_alive()
        outcomes.append(outcome.get("value", outcome.get("error")))
    return outcomes


class HeldRedisProxy:
    """A TCP proxy in front of the real Redis that holds the first PUBLISH until released."""

    def __init__(self) -> None:
        upstream = urlparse(settings.REDIS_URL)
        self.upstream = (upstream.hostname, upstream.port or 6379)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.address = f"redis://127.0.0.1:{self.server.getsockname()[1]}{upstream.path}"
        self.push_arrived = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            for source, target, held in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, held), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, held: bool) -> None:
        try:
            while data := source.recv(65536):
                if held and b"PUBLISH" in data and not self.release.is_set():
                    self.push_arrived.set()
                    self.release.wait(timeout=30)
                target.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.release.set()
        self.closed.set()
        self.server.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def held_redis() -> Iterator[HeldRedisProxy]:
    proxy = HeldRedisProxy()
    try:
        yield proxy
    finally:
        proxy.close()


def test_two_relays_at_once_relay_every_row_exactly_once(pushes):
    users = [make_user() for _ in range(50)]
    # Four rounds, so each user's rows are spread over the whole table and over batches.
    rounds = [
        {"first_name": "Ada"},
        {"last_name": "Lovelace"},
        {"phone_number": "+14155552671"},
        {"business_type": "retail"},
    ]
    for change in rounds:
        for user in users:
            services.profile_update(user_id=user.pk, **change)
    all_ids = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert len(all_ids) == 200

    reports = run_behind_barrier([lambda: outbox_relay(batch_size=20, time_budget=60)] * 2)

    assert [type(report) for report in reports] == [RelayReport, RelayReport]
    first, second = reports
    # Both really drained, and between them they took every row once.
    assert first.claimed > 0
    assert second.claimed > 0
    assert first.claimed + second.claimed == 200
    assert (first.relayed, second.relayed) == (first.claimed, second.claimed)
    assert (first.rescheduled, second.rescheduled, first.failed, second.failed) == (0, 0, 0, 0)

    rows = list(OutboxEvent.objects.values_list("pk", "attempts", "claimed_until", "failed_at"))
    assert {pk for pk, *_ in rows} == all_ids
    # A row claimed twice would show two attempts.
    assert [state for _, *state in rows] == [[1, None, None]] * 200
    assert OutboxEvent.objects.filter(relayed_at__isnull=True).count() == 0

    # Every push carries the user's final status; each user got at least one.
    received = pushes.take()
    assert len(received) == first.pushed + second.pushed
    assert {group for group, _ in received} == {user_group(user.pk) for user in users}
    assert {event["status"]["version"] for _, event in received} == {4}
    history = list(WizardStatusHistory.objects.values_list("user_id", "version"))
    assert sorted(history) == sorted((user.pk, 4) for user in users)


def test_a_row_locked_elsewhere_is_skipped_not_waited_on(pushes):
    locked_user, other_user = make_user(), make_user()
    services.profile_update(user_id=locked_user.pk, first_name="Ada")
    services.profile_update(user_id=other_user.pk, first_name="Bob")
    services.profile_update(user_id=other_user.pk, last_name="Builder")
    [locked_row] = outbox_state(locked_user)
    holder, holder_outcome, locked, release = holding_in_thread(
        lambda: OutboxEvent.objects.select_for_update().get(pk=locked_row["id"])
    )
    try:
        assert locked.wait(timeout=10)

        report = outbox_relay()

        # It returned while the other connection still holds the lock.
        assert holder.is_alive()
        assert holder_outcome == {}
        assert report == RelayReport(claimed=2, relayed=2, pushed=1)
        assert [group for group, _ in pushes.take()] == [user_group(other_user.pk)]
        assert outbox_state(locked_user) == [locked_row]
        assert [row["relayed_at"] is not None for row in outbox_state(other_user)] == [True] * 2
    finally:
        release.set()
        holder.join(timeout=30)
    assert holder_outcome == {"value": "released"}

    assert outbox_relay() == RelayReport(claimed=1, relayed=1, pushed=1)
    [entry] = history_of(locked_user)
    assert pushes.take() == [(user_group(locked_user.pk), status_event(entry["status"]))]
    [row] = outbox_state(locked_user)
    assert (row["attempts"], row["claimed_until"]) == (1, None)
    assert row["relayed_at"] is not None


def test_a_write_committed_while_a_batch_is_pushed_is_not_lost(settings, pushes, held_redis):
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    prefix = use_channel_layer(settings, address=held_redis.address)

    relay, relay_outcome = in_thread(outbox_relay)
    try:
        assert held_redis.push_arrived.wait(timeout=10)
        # The push of version 1 is on its way; the user writes again meanwhile.
        services.profile_update(user_id=user.pk, last_name="Lovelace")
        first_row, second_row = outbox_state(user)
        assert first_row["claimed_until"] is not None
        assert (second_row["version"], second_row["attempts"]) == (2, 0)
        assert second_row["claimed_until"] is None
    finally:
        held_redis.release.set()
        relay.join(timeout=30)

    assert relay_outcome == {"value": RelayReport(claimed=1, relayed=1, pushed=1)}
    [(group, in_flight)] = pushes.take()
    assert group == user_group(user.pk)
    assert in_flight["status"]["version"] == 1
    first_row, second_row = outbox_state(user)
    assert first_row["relayed_at"] is not None
    # Settling the batch marked only what it had claimed: the newer row is still pending.
    assert (second_row["relayed_at"], second_row["attempts"]) == (None, 0)

    use_channel_layer(settings, prefix=prefix, address=settings.REDIS_URL)
    assert outbox_relay() == RelayReport(claimed=1, relayed=1, pushed=1)
    newest, oldest = history_of(user)
    assert (newest["version"], oldest["version"]) == (2, 1)
    assert newest["changed"] == ["last_name"]
    assert pushes.take() == [(user_group(user.pk), status_event(newest["status"]))]
    assert OutboxEvent.objects.pending().count() == 0


def test_a_relay_that_died_after_claiming_leaves_rows_for_after_the_claim_timeout(settings, pushes):
    settings.OUTBOX_CLAIM_TIMEOUT_SECONDS = 1.0
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    services.profile_update(user_id=user.pk, last_name="Lovelace")

    before = timezone.now()
    claimed = outbox_claim(batch_size=10)  # ...and the relay dies here
    after = timezone.now()

    assert [(event.version, event.attempts) for event in claimed] == [(1, 1), (2, 1)]
    timeout = timedelta(seconds=1)
    rows = outbox_state(user)
    for row in rows:
        assert before + timeout <= row["claimed_until"] <= after + timeout
        assert (row["attempts"], row["relayed_at"]) == (1, None)
    claimed_until = max(row["claimed_until"] for row in rows)

    # Claimed by a live relay as far as anyone can tell: left alone.
    assert outbox_relay() == RelayReport()
    assert pushes.take() == []

    report = relay_when_due()
    relayed_at = timezone.now()

    assert relayed_at > claimed_until
    assert report == RelayReport(claimed=2, relayed=2, pushed=1)
    [entry] = history_of(user)
    assert entry["version"] == 2
    assert pushes.take() == [(user_group(user.pk), status_event(entry["status"]))]
    assert [(row["attempts"], row["claimed_until"]) for row in outbox_state(user)] == [
        (2, None),
        (2, None),
    ]


def test_a_relay_that_died_after_its_push_is_repeated_with_the_same_version(
    settings, pushes, held_redis
):
    settings.OUTBOX_CLAIM_TIMEOUT_SECONDS = 1.0
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    prefix = use_channel_layer(settings, address=held_redis.address)
    backend: dict[str, int] = {}

    def relay() -> RelayReport:
        connection.ensure_connection()
        backend["pid"] = connection.connection.info.backend_pid
        return outbox_relay()

    dying, dying_outcome = in_thread(relay)
    try:
        assert held_redis.push_arrived.wait(timeout=10)
        # The relay's push is in flight: its database connection dies now, so the push goes
        # out but the rows are never settled.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend["pid"]])

        def backend_gone() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend["pid"]]
                )
                return cursor.fetchone()[0] == 0

        poll_until(backend_gone)
    finally:
        held_redis.release.set()
        dying.join(timeout=30)

    assert type(dying_outcome["error"]) is OperationalError
    [(group, first_push)] = pushes.take()
    assert group == user_group(user.pk)
    [recorded] = history_of(user)
    assert first_push == status_event(recorded["status"])
    [row] = outbox_state(user)
    assert (row["attempts"], row["relayed_at"]) == (1, None)
    assert row["claimed_until"] is not None

    use_channel_layer(settings, prefix=prefix, address=settings.REDIS_URL)
    assert outbox_relay() == RelayReport()
    report = relay_when_due()

    assert report == RelayReport(claimed=1, relayed=1, pushed=1)
    # The same version again, which sockets ignore; the history keeps its one entry.
    [(group, duplicate)] = pushes.take()
    assert group == user_group(user.pk)
    assert duplicate["status"]["version"] == 1
    assert without_timestamp(duplicate["status"]) == without_timestamp(recorded["status"])
    assert history_of(user) == [recorded]
    [row] = outbox_state(user)
    assert (row["attempts"], row["claimed_until"]) == (2, None)
    assert row["relayed_at"] is not None


def test_a_relay_that_died_after_recording_pushes_the_recorded_version(pushes):
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    services.manual_prompt_save(user_id=user.pk, content="Be kind.")
    first_created = OutboxEvent.objects.filter(user=user).order_by("id")[0].created_at
    # What a relay does before its push, then it dies: the history entry is in.
    statuses = wizard_statuses_get(user_ids=[user.pk])
    to_push = services.wizard_status_history_record(
        changes=[
            services.StatusChange(
                status=statuses[user.pk],
                causes=[Topic.MANUAL_PROMPT_SAVED, Topic.PROFILE_UPDATED],
                actors=[{"kind": "user", "id": user.pk}],
                occurred_at=first_created,
            )
        ]
    )
    assert to_push == [statuses[user.pk]]
    [recorded] = history_of(user)
    assert pushes.take() == []

    report = outbox_relay()

    # Deterministic per version: the recorded version is pushed, not skipped.
    assert report == RelayReport(claimed=2, relayed=2, pushed=1)
    [(group, event)] = pushes.take()
    assert group == user_group(user.pk)
    assert event["status"]["version"] == 2
    assert without_timestamp(event["status"]) == without_timestamp(recorded["status"])
    assert history_of(user) == [recorded]


def lock_waits() -> int:
    """How many lock requests wait, over every backend (pg_locks is live, not a snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_a_relay_with_an_older_snapshot_never_records_or_pushes_over_a_newer_one(pushes):
    """Two relays of one user at once, the one that read the status first recording it last.

    Found by the fault suite's reasoning about concurrent relays: the newer relay compared its
    status with the history as it stood, found no change, recorded and pushed nothing; the
    older one then recorded and pushed its stale status. The history ended on it and sockets
    showed it until the reconciler caught up.
    """
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    assert outbox_relay() == RelayReport(claimed=1, relayed=1, pushed=1)
    pushes.take()
    services.profile_update(user_id=user.pk, last_name="Lovelace")  # a new status

    def lock_history_table() -> None:
        with connection.cursor() as cursor:
            # History inserts wait behind this; reads of the history do not.
            cursor.execute("LOCK TABLE onboarding_wizardstatushistory IN SHARE MODE")

    holder, holder_outcome, locked, release = holding_in_thread(lock_history_table)
    try:
        assert locked.wait(timeout=10)
        older, older_outcome = in_thread(outbox_relay)
        poll_until(lambda: lock_waits() == 1)  # it read the status and waits to record it
        services.profile_update(user_id=user.pk, last_name="")  # back to the first status
        newer, newer_outcome = in_thread(outbox_relay)
        # Whether it finishes or waits for the older relay, the older one goes on now.
        poll_until(lambda: not newer.is_alive() or lock_waits() == 2)
    finally:
        release.set()
        holder.join(timeout=30)
    older.join(timeout=30)
    newer.join(timeout=30)

    assert holder_outcome == {"value": "released"}
    assert older_outcome == {"value": RelayReport(claimed=1, relayed=1, pushed=1)}
    assert newer_outcome == {"value": RelayReport(claimed=1, relayed=1, pushed=1)}
    current = current_status(user)
    assert current["version"] == 3
    newest, middle, oldest = history_of(user)
    assert [entry["version"] for entry in (newest, middle, oldest)] == [3, 2, 1]
    assert without_timestamp(newest["status"]) == current
    assert newest["changed"] == ["last_name"]
    # Both were pushed; sockets keep the highest version, the current status.
    pushed = sorted((event["status"] for _, event in pushes.take()), key=lambda s: s["version"])
    assert [status["version"] for status in pushed] == [2, 3]
    assert without_timestamp(pushed[-1]) == current


def test_a_waiting_relay_is_woken_by_the_next_commit_without_a_new_task(pushes, nudges):
    ada, bob = make_user(), make_user()
    services.profile_update(user_id=ada.pk, first_name="Ada")  # its nudge queued a task...
    nudges.delete("celery")  # ...which is the relay started here
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    relay, outcome = in_thread(lambda: outbox_relay_until_idle(idle_wait=2.0))
    try:
        [(group, _)] = poll_until(pushes.take)
        assert group == user_group(ada.pk)

        # Committed while the relay waits (or still works): the nudge finds the flag up,
        # queues no task and wakes the running relay, which pushes at once.
        services.profile_update(user_id=bob.pk, first_name="Bob")
        [(group, _)] = poll_until(pushes.take, timeout=1.5)
        assert group == user_group(bob.pk)
        assert nudges.llen("celery") == 0
    finally:
        relay.join(timeout=30)

    # With nothing more for its idle wait it ends, flag down: the next commit queues a task.
    assert outcome == {"value": RelayReport(claimed=2, relayed=2, pushed=2)}
    assert OutboxEvent.objects.pending().count() == 0
    assert nudges.exists(RELAY_REQUESTED_KEY) == 0
    relay_request()
    assert nudges.llen("celery") == 1

"""The relay: claim, push the current status once per user, record the history, settle.

What the relay pushed is read the way a web process receives it (`pushes`, from
tests/outbox/conftest.py): a Redis pub/sub subscription to the users' group channels,
decoded by the channel layer. Each test gets a channel-layer prefix of its own (pub/sub
channels are global to the Redis server), so only its own pushes arrive.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from onboarding import services
from onboarding.models import WizardStatusHistory
from outbox import nudge
from outbox.models import OutboxEvent, Topic
from outbox.nudge import RELAY_REQUESTED_KEY, relay_request, relay_request_clear
from outbox.relay import RelayReport, backoff_delay, outbox_relay, outbox_relay_until_idle
from outbox.services import outbox_retry
from realtime.groups import user_group
from tests.factories import make_user
from tests.outbox.support import (
    CELERY_QUEUE,
    UNREACHABLE_REDIS,
    current_status,
    history_of,
    outbox_state,
    poll_until,
    real_redis_address,
    relay_when_due,
    status_event,
    use_channel_layer,
    without_timestamp,
)

HISTORY_TRIGGER_MESSAGE = "history insert refused by test trigger"


@contextmanager
def history_insert_fails_for(user_id: int) -> Iterator[None]:
    """A real database fault for one user only: inserting their history entries raises."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_refuse_history_insert() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.user_id = {int(user_id)} THEN "
                f"RAISE EXCEPTION '{HISTORY_TRIGGER_MESSAGE}'; "
                "END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_history_insert "
                "BEFORE INSERT ON onboarding_wizardstatushistory "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_history_insert()"
            )
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER IF EXISTS test_refuse_history_insert "
                "ON onboarding_wizardstatushistory"
            )
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_history_insert()")


@contextmanager
def commits_noted() -> Iterator[Callable[[], list[tuple[str, str, str]]]]:
    """Every committed write of an outbox row or a history entry notes the synchronous_commit
    its transaction commits with: a deferred constraint trigger runs as the commit begins."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE test_commit_note "
            "(id serial PRIMARY KEY, table_name text, operation text, synchronous_commit text)"
        )
        cursor.execute(
            "CREATE FUNCTION test_note_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO test_commit_note (table_name, operation, synchronous_commit) "
            "VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit')); "
            "RETURN NULL; END $$"
        )
        for table in ("outbox_outboxevent", "onboarding_wizardstatushistory"):
            cursor.execute(
                f"CREATE CONSTRAINT TRIGGER test_note_commit AFTER INSERT OR UPDATE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_note_commit()"
            )

    def notes() -> list[tuple[str, str, str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, operation, synchronous_commit FROM test_commit_note ORDER BY id"
            )
            return [tuple(row) for row in cursor.fetchall()]

    try:
        yield notes
    finally:
        with connection.cursor() as cursor:
            for table in ("outbox_outboxevent", "onboarding_wizardstatushistory"):
                cursor.execute(f"DROP TRIGGER IF EXISTS test_note_commit ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS test_note_commit() CASCADE")
            cursor.execute("DROP TABLE IF EXISTS test_commit_note")


def session_synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def between(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment <= end


# Relay basics.


@pytest.mark.django_db
def test_relay_pushes_one_coalesced_status_per_user_and_records_it(pushes):
    ada, bob = make_user(), make_user()
    services.profile_update(user_id=ada.pk, first_name="Ada")
    services.profile_update(user_id=ada.pk, last_name="Lovelace")
    services.profile_update(user_id=ada.pk, phone_number="+14155552671")
    services.profile_update(user_id=bob.pk, business_type="retail")
    services.manual_prompt_save(user_id=bob.pk, content="Be kind.")
    services.channel_connect(user_id=bob.pk, platform="instagram", external_id="ig-bob")
    rows_before = outbox_state()
    first_created = {
        user.pk: OutboxEvent.objects.filter(user=user).order_by("id").first().created_at
        for user in (ada, bob)
    }

    before = timezone.now()
    report = outbox_relay()
    after = timezone.now()

    assert report == RelayReport(claimed=6, relayed=6, pushed=2, rescheduled=0, failed=0)
    received = pushes.take_by_group()
    assert sorted(received) == sorted([user_group(ada.pk), user_group(bob.pk)])
    [ada_push] = received[user_group(ada.pk)]
    [bob_push] = received[user_group(bob.pk)]

    [ada_entry] = history_of(ada)
    assert ada_push == status_event(ada_entry["status"])
    assert ada_entry["version"] == 3
    assert without_timestamp(ada_entry["status"]) == current_status(ada)
    assert ada_entry["status"]["version"] == 3
    assert ada_entry["changed"] == ["first_name", "last_name", "phone_number"]
    assert ada_entry["causes"] == [Topic.PROFILE_UPDATED]
    assert ada_entry["occurred_at"] == first_created[ada.pk]
    assert between(ada_entry["recorded_at"], before, after)

    [bob_entry] = history_of(bob)
    assert bob_push == status_event(bob_entry["status"])
    assert bob_entry["version"] == 3
    assert without_timestamp(bob_entry["status"]) == current_status(bob)
    assert bob_entry["changed"] == [
        "business_type",
        "manual_prompt",
        "channel_connected",
        "instagram_connected",
    ]
    assert bob_entry["causes"] == [
        Topic.CHANNEL_CONNECTED,
        Topic.MANUAL_PROMPT_SAVED,
        Topic.PROFILE_UPDATED,
    ]
    assert bob_entry["occurred_at"] == first_created[bob.pk]

    rows_after = outbox_state()
    assert [row["id"] for row in rows_after] == [row["id"] for row in rows_before]
    for row, row_before in zip(rows_after, rows_before, strict=True):
        assert between(row["relayed_at"], before, after)
        # Claimed once, settled, and nothing else touched.
        assert row == {**row_before, "attempts": 1, "relayed_at": row["relayed_at"]}
    assert {(row["attempts"], row["claimed_until"], row["relayed_at"]) for row in rows_before} == {
        (0, None, None)
    }

    # Nothing is left: a second relay claims nothing and pushes nothing.
    assert outbox_relay() == RelayReport()
    assert pushes.take() == []
    assert WizardStatusHistory.objects.count() == 2


@pytest.mark.django_db
def test_each_run_is_bounded_by_its_batch_size_and_time_budget(pushes):
    users = [make_user() for _ in range(5)]
    for user in users:
        services.profile_update(user_id=user.pk, first_name="Ada")

    # Budget spent after the first batch: one batch, and the rest waits for the next run.
    assert outbox_relay(batch_size=2, time_budget=0) == RelayReport(claimed=2, relayed=2, pushed=2)
    assert OutboxEvent.objects.pending().count() == 3
    # With time to spare a run drains batch after batch until one comes back short.
    assert outbox_relay(batch_size=2) == RelayReport(claimed=3, relayed=3, pushed=3)
    assert OutboxEvent.objects.pending().count() == 0
    assert sorted(group for group, _ in pushes.take()) == sorted(
        user_group(user.pk) for user in users
    )


@pytest.mark.django_db
def test_write_that_leaves_the_status_alone_is_relayed_without_a_push(pushes):
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="A")
    assert outbox_relay() == RelayReport(claimed=1, relayed=1, pushed=1)
    [(group, first_push)] = pushes.take()
    assert group == user_group(user.pk)
    assert first_push["status"]["version"] == 1

    services.profile_update(user_id=user.pk, first_name="B")
    report = outbox_relay()

    assert report == RelayReport(claimed=1, relayed=1, pushed=0)
    assert pushes.take() == []
    assert [entry["version"] for entry in history_of(user)] == [1]
    [_, second_row] = outbox_state(user)
    assert second_row["version"] == 2
    assert second_row["relayed_at"] is not None
    assert second_row["claimed_until"] is None


@pytest.mark.django_db
def test_deactivated_user_is_told_so_instead_of_a_status(pushes):
    leaving, staying = make_user(), make_user()
    services.profile_update(user_id=leaving.pk, first_name="Ada")
    outbox_relay()
    pushes.take()

    services.user_set_active(user_id=leaving.pk, is_active=False)
    services.profile_update(user_id=staying.pk, first_name="Bob")
    report = outbox_relay()

    assert report == RelayReport(claimed=2, relayed=2, pushed=2)
    received = pushes.take_by_group()
    assert received == {
        user_group(leaving.pk): [{"type": "wizard.account_deactivated"}],
        user_group(staying.pk): [status_event(history_of(staying)[0]["status"])],
    }
    # Deactivation is no wizard status change: the history stays as it was.
    assert [entry["version"] for entry in history_of(leaving)] == [1]
    assert [entry["version"] for entry in history_of(staying)] == [1]
    assert [row["relayed_at"] is not None for row in outbox_state(leaving)] == [True, True]


@pytest.mark.django_db(transaction=True)
def test_relay_commits_skip_the_flush_and_leave_the_session_as_it_was(pushes):
    ada = make_user()

    with commits_noted() as notes:
        services.profile_update(user_id=ada.pk, first_name="Ada")
        report = outbox_relay()

        assert report == RelayReport(claimed=1, relayed=1, pushed=1)
        assert notes() == [
            ("outbox_outboxevent", "INSERT", "on"),  # the write: durable
            ("outbox_outboxevent", "UPDATE", "off"),  # the claim
            ("onboarding_wizardstatushistory", "INSERT", "off"),  # committed with the claim
            ("outbox_outboxevent", "UPDATE", "off"),  # the settle
        ]
    # Transaction-scoped: the next transaction on this connection (behind PgBouncer, perhaps
    # another process's) commits durably.
    assert session_synchronous_commit() == "on"


# Failures.


@pytest.mark.django_db
def test_unreachable_redis_reschedules_with_backoff_and_never_fails_the_rows(settings, pushes):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 30.0
    settings.OUTBOX_BACKOFF_CAP_SECONDS = 60.0
    settings.OUTBOX_MAX_ATTEMPTS = 2
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    services.profile_update(user_id=user.pk, last_name="Lovelace")
    use_channel_layer(settings, address=UNREACHABLE_REDIS)

    before = timezone.now()
    report = outbox_relay()
    after = timezone.now()

    assert report == RelayReport(claimed=2, rescheduled=2)
    error = "ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    rows = outbox_state(user)
    for row in rows:
        # First retry after base/2 to base seconds: well in the future.
        assert between(
            row.pop("next_attempt_at"),
            before + timedelta(seconds=15),
            after + timedelta(seconds=30),
        )
        assert row == {
            "id": row["id"],
            "version": row["version"],
            "attempts": 1,
            "claimed_until": None,
            "relayed_at": None,
            "failed_at": None,
            "last_error": error,
        }
    # Not due: a relay now leaves them alone.
    assert outbox_relay() == RelayReport()

    # Time passes; Redis stays down for many more attempts than OUTBOX_MAX_ATTEMPTS.
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0.001
    settings.OUTBOX_BACKOFF_CAP_SECONDS = 0.001
    OutboxEvent.objects.filter(user=user).update(next_attempt_at=timezone.now())
    outcomes = RelayReport()
    while OutboxEvent.objects.filter(user=user, attempts__lt=5).exists():
        outcomes.add(relay_when_due())
        assert OutboxEvent.objects.filter(failed_at__isnull=False).count() == 0
    assert outcomes == RelayReport(claimed=8, rescheduled=8)
    assert [(row["attempts"], row["failed_at"]) for row in outbox_state(user)] == [(5, None)] * 2
    # Nothing was pushed anywhere under this prefix while Redis was unreachable.
    assert pushes.take() == []

    # Redis is back: the status recorded on the first attempt is pushed, once, as version 2.
    use_channel_layer(settings, address=real_redis_address())
    report = relay_when_due()

    assert report == RelayReport(claimed=2, relayed=2, pushed=1)
    [entry] = history_of(user)
    assert entry["version"] == 2
    assert between(entry["recorded_at"], before, after)
    [(group, event)] = pushes.take()
    assert group == user_group(user.pk)
    # Computed afresh at push time: the same status and version, a later timestamp.
    assert event["type"] == "wizard.status"
    assert without_timestamp(event["status"]) == without_timestamp(entry["status"])
    assert event["status"]["timestamp"] > entry["status"]["timestamp"]
    assert [(row["attempts"], row["last_error"]) for row in outbox_state(user)] == [(6, "")] * 2


@pytest.mark.django_db(transaction=True)
def test_poison_rows_of_one_user_fail_after_max_attempts_without_holding_up_others(
    settings, pushes, nudges
):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0.2
    settings.OUTBOX_BACKOFF_CAP_SECONDS = 0.2
    poisoned, healthy = make_user(), make_user()
    services.profile_update(user_id=poisoned.pk, first_name="Ada")
    services.profile_update(user_id=healthy.pk, first_name="Bob")
    services.profile_update(user_id=healthy.pk, last_name="Builder")
    [poisoned_row] = outbox_state(poisoned)

    with history_insert_fails_for(poisoned.pk):
        before = timezone.now()
        report = outbox_relay()
        after = timezone.now()

        # One batch, three rows: the healthy user's two go through, the poisoned one waits.
        assert report == RelayReport(claimed=3, relayed=2, pushed=1, rescheduled=1)
        assert pushes.take() == [
            (user_group(healthy.pk), status_event(history_of(healthy)[0]["status"]))
        ]
        assert history_of(poisoned) == []
        row = outbox_state(poisoned)[0]
        error = (
            f"ProgrammingError: {HISTORY_TRIGGER_MESSAGE}\n"
            "CONTEXT:  PL/pgSQL function test_refuse_history_insert() line 1 at RAISE"
        )
        assert between(
            row.pop("next_attempt_at"),
            before + timedelta(seconds=0.1),
            after + timedelta(seconds=0.2),
        )
        assert row == {
            "id": poisoned_row["id"],
            "version": 1,
            "attempts": 1,
            "claimed_until": None,
            "relayed_at": None,
            "failed_at": None,
            "last_error": error,
        }

        # Each time the poisoned row is due again it shares a batch with a fresh write of
        # the healthy user, which goes through while the poisoned row is retried, then failed.
        reports = RelayReport()
        for change in ({"phone_number": "+14155552671"}, {"business_type": "retail"}):
            poll_until(
                lambda: OutboxEvent.objects.filter(
                    pk=poisoned_row["id"], next_attempt_at__lte=timezone.now()
                ).exists()
            )
            services.profile_update(user_id=healthy.pk, **change)
            reports.add(outbox_relay())
        given_up = timezone.now()
        assert reports == RelayReport(claimed=4, relayed=2, pushed=2, rescheduled=1, failed=1)

        failed = outbox_state(poisoned)[0]
        assert between(failed["failed_at"], after, given_up)
        assert failed == {
            **poisoned_row,
            "attempts": 3,
            "failed_at": failed["failed_at"],
            "next_attempt_at": failed["next_attempt_at"],
            "last_error": error,
        }
        assert history_of(poisoned) == []
        assert OutboxEvent.objects.filter(user=healthy).pending().count() == 0
        assert [(group, event["status"]["version"]) for group, event in pushes.take()] == [
            (user_group(healthy.pk), 3),
            (user_group(healthy.pk), 4),
        ]

        # A failed row stays put: the relay no longer claims it.
        assert outbox_relay() == RelayReport()

    # Fixed and retried from the admin: it is relayed like any other row.
    relayed_row = OutboxEvent.objects.filter(user=healthy).first().pk
    retried_at = timezone.now()
    assert outbox_retry(event_ids=[poisoned_row["id"], relayed_row]) == 1
    row = outbox_state(poisoned)[0]
    assert row["next_attempt_at"] >= retried_at
    assert (row["attempts"], row["failed_at"], row["last_error"], row["relayed_at"]) == (
        0,
        None,
        "",
        None,
    )
    assert outbox_relay() == RelayReport(claimed=1, relayed=1, pushed=1)
    [entry] = history_of(poisoned)
    assert entry["version"] == 1
    assert pushes.take() == [(user_group(poisoned.pk), status_event(entry["status"]))]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0.5
    settings.OUTBOX_BACKOFF_CAP_SECONDS = 60.0
    samples = 2000
    expected_ceiling = {
        0: 0.5,
        1: 0.5,
        2: 1.0,
        3: 2.0,
        4: 4.0,
        5: 8.0,
        6: 16.0,
        7: 32.0,
        8: 60.0,
        9: 60.0,
        50: 60.0,
        # Transient failures retry forever, so the count of attempts has no bound.
        1100: 60.0,
        100_000: 60.0,
    }
    for attempts, ceiling in expected_ceiling.items():
        delays = [backoff_delay(attempts).total_seconds() for _ in range(samples)]
        assert ceiling / 2 <= min(delays), attempts
        assert max(delays) <= ceiling, attempts
        # Jitter spreads them over the whole upper half, not a few fixed points.
        assert min(delays) < ceiling * 0.55, attempts
        assert max(delays) > ceiling * 0.95, attempts
        assert len(set(delays)) > samples * 0.95, attempts


# The nudge after commit.


@pytest.mark.django_db
def test_a_write_registers_the_relay_nudge_on_commit(django_capture_on_commit_callbacks, nudges):
    user = make_user()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.profile_update(user_id=user.pk, first_name="Ada")
    assert callbacks == [relay_request]
    # Not run yet: nothing queued.
    assert nudges.exists(RELAY_REQUESTED_KEY) == 0
    assert nudges.llen(CELERY_QUEUE) == 0

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.profile_update(user_id=user.pk, first_name="Ada")  # no change, no row
    assert callbacks == []


@pytest.mark.django_db
def test_nudges_after_commit_queue_one_relay_task(django_capture_on_commit_callbacks, nudges):
    user = make_user()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.profile_update(user_id=user.pk, first_name="Ada")
        services.profile_update(user_id=user.pk, last_name="Lovelace")

    assert callbacks == [relay_request, relay_request]
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    [queued] = nudges.lrange(CELERY_QUEUE, 0, -1)
    message = json.loads(queued)
    assert message["headers"]["task"] == "outbox.relay"
    assert message["headers"]["expires"] is not None


def test_relay_request_is_debounced_until_cleared(nudges):
    assert nudges.llen(CELERY_QUEUE) == 0

    relay_request()
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    assert 0 < nudges.pttl(RELAY_REQUESTED_KEY) <= 5000
    assert nudges.llen(CELERY_QUEUE) == 1

    relay_request()
    relay_request()
    assert nudges.llen(CELERY_QUEUE) == 1

    relay_request_clear()
    assert nudges.exists(RELAY_REQUESTED_KEY) == 0
    assert nudges.llen(CELERY_QUEUE) == 1

    relay_request()
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    assert nudges.llen(CELERY_QUEUE) == 2
    tasks = [json.loads(raw)["headers"]["task"] for raw in nudges.lrange(CELERY_QUEUE, 0, -1)]
    assert tasks == ["outbox.relay", "outbox.relay"]


@pytest.mark.django_db
def test_a_relay_run_claims_what_committed_while_its_flag_held_nudges_back(
    pushes, nudges, monkeypatch
):
    ada, bob = make_user(), make_user()
    services.profile_update(user_id=ada.pk, first_name="Ada")
    relay_request()  # the nudge of that write: a task is queued, the flag is set
    nudges.delete(CELERY_QUEUE)  # ...and this run is that task
    real_clear = nudge.relay_request_clear

    def write_just_before_the_clear() -> None:
        # The worst moment: the run found nothing more to claim and is about to clear the
        # flag. This commit's nudge finds the flag set and queues no task.
        services.profile_update(user_id=bob.pk, first_name="Bob")
        relay_request()
        assert nudges.llen(CELERY_QUEUE) == 0
        real_clear()

    monkeypatch.setattr(nudge, "relay_request_clear", write_just_before_the_clear)
    report = outbox_relay_until_idle()

    # One more claim after the clear relayed it: nothing waits for the sweep.
    assert report == RelayReport(claimed=2, relayed=2, pushed=2)
    assert OutboxEvent.objects.pending().count() == 0
    assert sorted(group for group, _ in pushes.take()) == sorted(
        [user_group(ada.pk), user_group(bob.pk)]
    )
    # Idle now: the flag is down, so the next commit queues a task of its own.
    assert nudges.exists(RELAY_REQUESTED_KEY) == 0
    relay_request()
    assert nudges.llen(CELERY_QUEUE) == 1


@pytest.mark.django_db
def test_a_relay_run_that_spends_its_budget_hands_over_to_a_new_task(pushes, nudges, settings):
    settings.OUTBOX_RELAY_BATCH_SIZE = 2
    users = [make_user() for _ in range(3)]
    for user in users:
        services.profile_update(user_id=user.pk, first_name="Ada")
    nudges.set(RELAY_REQUESTED_KEY, 1)  # this run's own flag

    report = outbox_relay_until_idle(time_budget=0)

    assert report == RelayReport(claimed=2, relayed=2, pushed=2)
    assert OutboxEvent.objects.pending().count() == 1
    # The rest goes to a fresh task, queued by this run.
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    [queued] = nudges.lrange(CELERY_QUEUE, 0, -1)
    assert json.loads(queued)["headers"]["task"] == "outbox.relay"


@pytest.mark.django_db
def test_a_busy_run_whose_wait_reaches_its_budget_queues_its_successor_before_ending(
    pushes, nudges, settings, monkeypatch
):
    """Under a steady stream the run's last wait ends at its budget: the next task is queued
    then, not by the next commit after the flag is down (a Celery hop behind that commit)."""
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    nudges.set(RELAY_REQUESTED_KEY, 1)
    nudges.delete(CELERY_QUEUE)
    clock = [1000.0]
    monkeypatch.setattr("outbox.relay.time.monotonic", lambda: clock[0])

    def no_commit_until_the_budget(*, until: float) -> bool:
        clock[0] = until
        return False

    monkeypatch.setattr("outbox.relay.nudge.wait_for_wake_up", no_commit_until_the_budget)
    # The budget ends before the idle wait would: the wait runs into it.
    report = outbox_relay_until_idle(time_budget=1, idle_wait=2)

    assert report == RelayReport(claimed=1, relayed=1, pushed=1)
    assert nudges.exists(RELAY_REQUESTED_KEY) == 1
    [queued] = nudges.lrange(CELERY_QUEUE, 0, -1)
    assert json.loads(queued)["headers"]["task"] == "outbox.relay"


@pytest.mark.django_db
def test_an_idle_run_ends_with_the_flag_down_and_queues_nothing(
    pushes, nudges, settings, monkeypatch
):
    nudges.set(RELAY_REQUESTED_KEY, 1)
    nudges.delete(CELERY_QUEUE)
    monkeypatch.setattr("outbox.relay.nudge.wait_for_wake_up", lambda *, until: False)
    assert outbox_relay_until_idle(time_budget=5, idle_wait=2) == RelayReport()
    assert nudges.exists(RELAY_REQUESTED_KEY) == 0
    assert nudges.llen(CELERY_QUEUE) == 0

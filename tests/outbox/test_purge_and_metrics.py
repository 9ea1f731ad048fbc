"""Retention of relayed rows, and what /metrics tells an operator about the outbox."""

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from onboarding import services
from onboarding.models import WizardStatusHistory
from outbox.models import OutboxEvent, Topic
from outbox.relay import RelayReport, outbox_relay
from outbox.services import outbox_purge
from outbox.tasks import purge_relayed_outbox
from tests.factories import make_user
from tests.outbox.support import UNREACHABLE_REDIS, use_channel_layer

pytestmark = pytest.mark.django_db

HISTOGRAM_BUCKETS = [
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "+Inf",
]


@pytest.fixture(autouse=True)
def own_channel_layer_prefix(settings) -> Iterator[None]:
    """Relayed statuses go to groups nobody else listens to (pub/sub spans the server)."""
    use_channel_layer(settings, prefix=f"purge-metrics-test-{uuid.uuid4().hex[:12]}")
    yield


def make_event(user, *, version: int, age: timedelta = timedelta(0), **fields) -> OutboxEvent:
    created_at = timezone.now() - age
    fields.setdefault("next_attempt_at", created_at)
    return OutboxEvent.objects.create(
        user=user,
        topic=Topic.PROFILE_UPDATED,
        version=version,
        created_at=created_at,
        **fields,
    )


def make_history(user, *, version: int) -> WizardStatusHistory:
    now = timezone.now()
    return WizardStatusHistory.objects.create(
        user=user,
        version=version,
        status={"version": version},
        changed=["first_name"],
        causes=[Topic.PROFILE_UPDATED],
        occurred_at=now,
        recorded_at=now,
    )


def outbox_deletes(queries: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith('DELETE FROM "outbox_outboxevent"')
    ]


# Purge.


def test_purge_deletes_old_relayed_rows_in_batches_and_nothing_else(settings):
    settings.OUTBOX_RETENTION = timedelta(days=7)
    user = make_user()
    now = timezone.now()
    old_relayed = [
        make_event(user, version=n, age=timedelta(days=11), relayed_at=now - timedelta(days=d))
        for n, d in enumerate([10, 9, 8, 30, 12], start=1)
    ]
    just_past_retention = make_event(
        user, version=6, age=timedelta(days=8), relayed_at=now - timedelta(days=7, minutes=1)
    )
    within_retention = [
        make_event(user, version=7, age=timedelta(days=8), relayed_at=now - timedelta(days=6)),
        make_event(user, version=8, age=timedelta(days=1), relayed_at=now - timedelta(days=1)),
    ]
    old_pending = [
        make_event(user, version=9, age=timedelta(days=30)),
        make_event(
            user, version=10, age=timedelta(days=30), attempts=5, last_error="RedisError: down"
        ),
    ]
    old_failed = make_event(
        user, version=11, age=timedelta(days=30), attempts=8, failed_at=now - timedelta(days=29)
    )
    history = [make_history(user, version=n) for n in (1, 6, 11)]
    kept = {event.pk for event in [*within_retention, *old_pending, old_failed]}

    with CaptureQueriesContext(connection) as queries:
        deleted = outbox_purge(batch_size=2)

    assert deleted == 6
    # Six rows, two at a time.
    assert len(outbox_deletes(queries)) == 3
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == kept
    assert not OutboxEvent.objects.filter(
        pk__in=[event.pk for event in [*old_relayed, just_past_retention]]
    ).exists()
    assert list(WizardStatusHistory.objects.order_by("version")) == history

    # Nothing more is due.
    with CaptureQueriesContext(connection) as queries:
        assert outbox_purge(batch_size=2) == 0
    assert outbox_deletes(queries) == []

    # A shorter retention reaches the recent relayed rows, still not the pending or failed.
    assert outbox_purge(older_than=timedelta(hours=12)) == 2
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {
        event.pk for event in [*old_pending, old_failed]
    }
    assert list(WizardStatusHistory.objects.order_by("version")) == history


def test_purge_with_no_retention_takes_every_relayed_row():
    user = make_user()
    relayed = make_event(user, version=1, relayed_at=timezone.now())
    pending = make_event(user, version=2)

    assert outbox_purge(older_than=timedelta(0)) == 1

    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [pending.pk]
    assert not OutboxEvent.objects.filter(pk=relayed.pk).exists()


def test_purge_task_uses_the_configured_retention(settings):
    settings.OUTBOX_RETENTION = timedelta(days=2)
    settings.OUTBOX_PURGE_BATCH_SIZE = 1
    user = make_user()
    now = timezone.now()
    old = make_event(user, version=1, age=timedelta(days=4), relayed_at=now - timedelta(days=3))
    recent = make_event(user, version=2, age=timedelta(days=4), relayed_at=now - timedelta(days=1))
    pending = make_event(user, version=3, age=timedelta(days=4))

    with CaptureQueriesContext(connection) as queries:
        assert purge_relayed_outbox() == 1

    assert len(outbox_deletes(queries)) == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert not OutboxEvent.objects.filter(pk=old.pk).exists()


# Metrics.


def scrape() -> dict[str, float]:
    """GET /metrics, as {sample name with labels: value}."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_report_the_backlog_read_from_the_database():
    ada, bob = make_user(), make_user()
    oldest = make_event(ada, version=1, age=timedelta(seconds=120))
    make_event(ada, version=2, age=timedelta(seconds=60))
    # Waiting for a retry is still pending.
    make_event(
        bob,
        version=1,
        age=timedelta(seconds=5),
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    make_event(bob, version=2, age=timedelta(days=2), failed_at=timezone.now())
    make_event(bob, version=3, age=timedelta(days=2), failed_at=timezone.now())
    for version in range(3, 7):
        make_event(ada, version=version, age=timedelta(days=3), relayed_at=timezone.now())

    samples = scrape()
    scraped_at = timezone.now()

    assert samples["wizard_outbox_pending"] == 3.0
    assert samples["wizard_outbox_failed"] == 2.0
    age = samples["wizard_outbox_oldest_pending_age_seconds"]
    assert 120.0 <= age <= (scraped_at - oldest.created_at).total_seconds()
    for name in ("wizard_relayed_total", "wizard_status_pushes_total"):
        assert name in samples
    buckets = [
        name.removeprefix('wizard_relay_batch_seconds_bucket{le="').removesuffix('"}')
        for name in samples
        if name.startswith("wizard_relay_batch_seconds_bucket")
    ]
    assert buckets == HISTOGRAM_BUCKETS
    assert "wizard_relay_batch_seconds_count" in samples
    assert "wizard_relay_batch_seconds_sum" in samples


def test_metrics_with_an_empty_outbox_show_no_lag():
    samples = scrape()

    assert samples["wizard_outbox_pending"] == 0.0
    assert samples["wizard_outbox_failed"] == 0.0
    assert samples["wizard_outbox_oldest_pending_age_seconds"] == 0.0


def test_relay_counters_count_what_a_relay_did():
    ada, bob = make_user(), make_user()
    services.profile_update(user_id=ada.pk, first_name="Ada")
    services.profile_update(user_id=ada.pk, last_name="Lovelace")
    services.profile_update(user_id=bob.pk, first_name="Bob")
    before = scrape()
    assert before["wizard_outbox_pending"] == 3.0

    report = outbox_relay()
    after = scrape()

    assert report == RelayReport(claimed=3, relayed=3, pushed=2)
    assert after["wizard_relayed_total"] - before["wizard_relayed_total"] == 3.0
    assert after["wizard_status_pushes_total"] - before["wizard_status_pushes_total"] == 2.0
    batches = "wizard_relay_batch_seconds_count"
    assert after[batches] - before[batches] == 1.0
    assert after["wizard_outbox_pending"] == 0.0
    assert after["wizard_outbox_oldest_pending_age_seconds"] == 0.0


def test_relay_counters_count_retries_when_redis_is_down(settings):
    user = make_user()
    services.profile_update(user_id=user.pk, first_name="Ada")
    services.profile_update(user_id=user.pk, last_name="Lovelace")
    use_channel_layer(settings, address=UNREACHABLE_REDIS)
    retries = 'wizard_relay_retries_total{reason="transient"}'
    before = scrape()

    assert outbox_relay() == RelayReport(claimed=2, rescheduled=2)
    after = scrape()

    assert after[retries] - before.get(retries, 0.0) == 2.0
    assert after["wizard_relayed_total"] == before["wizard_relayed_total"]
    assert after["wizard_status_pushes_total"] == before["wizard_status_pushes_total"]
    assert after["wizard_outbox_pending"] == 2.0
    assert after["wizard_outbox_failed"] == 0.0

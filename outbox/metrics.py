"""Relay metrics. Counters live in prometheus-client's multiprocess files, so the web
process's /metrics sums what every worker recorded."""

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RELAYED = Counter("wizard_relayed", "Outbox events marked relayed")
PUSHES = Counter("wizard_status_pushes", "Status messages sent to user groups")
RELAY_RETRIES = Counter("wizard_relay_retries", "Outbox events rescheduled", ["reason"])
RELAY_FAILED = Counter("wizard_relay_failed", "Outbox events marked failed")
RELAY_BATCH_SECONDS = Histogram(
    "wizard_relay_batch_seconds",
    "Time to relay one claimed batch (claim to settle)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class OutboxBacklogCollector(Collector):
    """Gauges read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from outbox.models import OutboxEvent

        pending = OutboxEvent.objects.pending().aggregate(oldest=Min("created_at"))
        pending_count = OutboxEvent.objects.pending().count()
        failed_count = OutboxEvent.objects.failed().count()
        oldest = pending["oldest"]
        age = (timezone.now() - oldest) if oldest else timedelta(0)
        yield GaugeMetricFamily(
            "wizard_outbox_pending", "Outbox events not yet relayed", value=pending_count
        )
        yield GaugeMetricFamily(
            "wizard_outbox_failed", "Outbox events given up on", value=failed_count
        )
        yield GaugeMetricFamily(
            "wizard_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox event: the number to alert on",
            value=max(age.total_seconds(), 0.0),
        )

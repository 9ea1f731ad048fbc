"""Relay metrics. Counters live in prometheus-client's multiprocess files, so the web
process's /metrics sums what every worker recorded."""

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

RELAYED = Counter("wizard_relayed", "Outbox events marked relayed")
PUSHES = Counter("wizard_status_pushes", "Status messages sent to user groups")
RELAY_RETRIES = Counter("wizard_relay_retries", "Outbox events rescheduled", ["reason"])
# Every reason is exported from the start, at 0: a rate over a series that appears only with
# its first retry misses that retry.
RETRY_TRANSIENT, RETRY_ERROR = "transient", "error"
for _reason in (RETRY_TRANSIENT, RETRY_ERROR):
    RELAY_RETRIES.labels(_reason)
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

        try:
            pending = OutboxEvent.objects.pending().aggregate(oldest=Min("created_at"))
            pending_count = OutboxEvent.objects.pending().count()
            failed_count = OutboxEvent.objects.failed().count()
        except DatabaseError:
            # The counters are worth a scrape while the database is down; the missing
            # gauges say it (and /readyz names what is down).
            logger.warning("Outbox gauges skipped: the database is unavailable", exc_info=True)
            return
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

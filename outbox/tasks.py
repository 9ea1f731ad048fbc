"""Thin Celery tasks: one service call each, with stable names."""

from celery import shared_task
from django.conf import settings

from outbox.relay import outbox_relay, outbox_relay_until_idle
from outbox.services import outbox_purge


@shared_task(name="outbox.relay", ignore_result=True, acks_late=False)
def relay_outbox(sweep: bool = False) -> dict[str, int]:
    if sweep:  # beat's catch-all: the nudge flag belongs to the nudged run
        return vars(outbox_relay())
    return vars(outbox_relay_until_idle(idle_wait=settings.OUTBOX_RELAY_IDLE_WAIT_SECONDS))


@shared_task(name="outbox.purge_relayed", ignore_result=True)
def purge_relayed_outbox() -> int:
    return outbox_purge()

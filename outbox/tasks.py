"""Thin Celery tasks: one service call each, with stable names."""

from celery import shared_task

from outbox.services import outbox_purge, outbox_relay_until_idle


@shared_task(name="outbox.relay", ignore_result=True, acks_late=False)
def relay_outbox() -> dict[str, int]:
    return vars(outbox_relay_until_idle())


@shared_task(name="outbox.purge_relayed", ignore_result=True)
def purge_relayed_outbox() -> int:
    return outbox_purge()

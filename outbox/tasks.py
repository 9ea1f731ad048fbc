"""Thin Celery tasks: one service call each, with stable names."""

from celery import shared_task

from outbox.services import outbox_purge, outbox_relay, relay_request_clear


@shared_task(name="outbox.relay", ignore_result=True, acks_late=False)
def relay_outbox() -> dict[str, int]:
    relay_request_clear()  # before claiming: a commit after this point nudges again
    report = outbox_relay()
    return vars(report)


@shared_task(name="outbox.purge_relayed", ignore_result=True)
def purge_relayed_outbox() -> int:
    return outbox_purge()

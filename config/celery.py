import os
import re
from collections.abc import Mapping

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("wizard_status")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^/\s]+@", re.IGNORECASE)


def _mask_url_passwords(value):
    """`value` with the password of every URL in its strings, at any depth, masked."""
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1********@", value)
    if isinstance(value, Mapping):
        return {key: _mask_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_url_passwords(item) for item in value]
    return value


@worker_init.connect
def answer_without_passwords(**kwargs) -> None:
    """Why: flower's worker page (its Config tab) and /api/workers show the worker's `conf`
    reply, which lists every Django setting (the app reads django.conf:settings). Celery masks
    a broker URL there only under the key `broker_url`; ours is CELERY_BROKER_URL, and
    REDIS_URL and CHANNEL_LAYERS hold the same URL, so the Redis password went out in clear.
    `report` (what `celery inspect report` prints for bug reports) has the same settings.
    Both commands answer as Celery's own do, with every URL's password masked; `stats`
    already leaves it out. Registered in the worker only: the control module costs every other
    process (web, beat) a third of a second at start.
    """
    from celery.worker import control

    @control.inspect_command(
        name="conf",
        alias="dump_conf",
        variadic="with_defaults",
        signature="[include_defaults=False]",
    )
    def conf_without_passwords(state, with_defaults=False, **kwargs):
        """List configuration."""
        return _mask_url_passwords(control.conf(state, with_defaults=with_defaults, **kwargs))

    @control.inspect_command(name="report")
    def report_without_passwords(state):
        """Information about Celery installation for bug reports."""
        return _mask_url_passwords(control.report(state))


@task_prerun.connect
def reuse_healthy_connections(**kwargs) -> None:
    """Keep a worker's database connection across tasks, but never a broken or stale one."""
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
def freeze_worker_startup_heap(**kwargs) -> None:
    """A full collection in the worker stalls the relay as one in a web process stalls its
    sockets (config/heap.py)."""
    from config.heap import freeze_startup_heap

    freeze_startup_heap()

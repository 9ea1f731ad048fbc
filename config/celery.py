import os

from celery import Celery
from celery.signals import task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("wizard_status")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def reuse_healthy_connections(**kwargs) -> None:
    """Keep a worker's database connection across tasks, but never a broken or stale one."""
    from django.db import close_old_connections

    close_old_connections()


def _relay_commits_skip_flush(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql":
        connection.connection.execute("SET synchronous_commit TO OFF")


@worker_init.connect
def relay_bookkeeping_without_flush(**kwargs) -> None:
    """A worker's commits need not wait for the disk.

    Workers write only relay bookkeeping: claims, history entries, settled and purged rows.
    If the database crashes and loses its last commits, those rows are simply pending again
    and are relayed once more with the same version, which sockets ignore. A lost history
    entry is recorded again on that retry; a later durable commit would have flushed it.
    The data changes themselves are committed by the web process with full durability.
    """
    from django.db.backends.signals import connection_created

    connection_created.connect(_relay_commits_skip_flush, weak=False)

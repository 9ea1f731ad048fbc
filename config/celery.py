import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("wizard_status")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def reuse_healthy_connections(**kwargs) -> None:
    """Keep a worker's database connection across tasks, but never a broken or stale one."""
    from django.db import close_old_connections

    close_old_connections()

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outbox"

    def ready(self) -> None:
        # Every process registers the tasks, not only workers (which autodiscover them): the
        # nudge queues the relay task by its registered name.
        from outbox import tasks  # noqa: F401

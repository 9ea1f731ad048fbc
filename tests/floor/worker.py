"""The floor's Celery app: one task that pushes an event to its user's group, nothing read.

    celery -A tests.floor.worker worker --pool threads --concurrency 2 \
        --without-gossip --without-mingle --loglevel WARNING
"""

import asyncio
import logging
import os
import threading

from celery import Celery
from celery.signals import worker_ready

from tests.floor.layer import floor_layer, group_name

app = Celery("floor", broker=os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/9"))
# The product's broker settings (config/settings.py), so the Celery hop costs the same.
app.conf.update(
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"ack_emulation": False},
    worker_send_task_events=False,
    task_send_sent_event=False,
    # One queue per benchmark run (the writers and the worker get the same environment).
    task_default_queue=os.environ.get("FLOOR_QUEUE", "floor"),
)

READY = "floor worker ready"
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every send, so the layer's Redis connection outlives a task
    (`async_to_sync` would build a loop and a connection per call)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="floor-sends", daemon=True).start()
        return _loop


async def _group_send(user_id: int, message: dict) -> None:
    await floor_layer().group_send(group_name(user_id), message)


@app.task(name="floor.push")
def push(event_id: int, user_id: int, created: float) -> None:
    message = {"type": "floor.push", "event_id": event_id, "user_id": user_id, "created": created}
    asyncio.run_coroutine_threadsafe(_group_send(user_id, message), _sender_loop()).result()


@worker_ready.connect
def _announce(**kwargs) -> None:
    # At --loglevel WARNING Celery logs nothing when it is ready; the benchmark polls for this.
    logging.getLogger(__name__).warning(READY)

"""The relay's nudge protocol on Redis: a debounce flag and wake-up tokens.

A commit nudges the relay (`relay_request`): the first nudge while no relay task is queued
or running queues one and raises the flag; every nudge also leaves a wake-up token, so a
task that found nothing more to claim can wait a moment for one (`wait_for_wake_up`) and
claim again at once, with no new task. One round trip to Redis, a Celery message only when
the flag was down. If the nudge is lost (Redis down, process killed), the beat sweep relays.
"""

import logging
import time

import redis
from celery import current_app

from config.redis import redis_client

logger = logging.getLogger(__name__)

RELAY_REQUESTED_KEY = "wizard:outbox:relay-requested"
RELAY_WAKE_KEY = "wizard:outbox:relay-wake"
RELAY_FLAG_TTL_MS = 5000  # a relay that died with the flag up holds nudges back this long
RELAY_TASK = "outbox.relay"  # looked up by name: the tasks module sits above this one


def relay_request() -> None:
    """Nudge the relay right after a commit, debounced."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(RELAY_REQUESTED_KEY, 1, nx=True, px=RELAY_FLAG_TTL_MS)
    pipe.lpush(RELAY_WAKE_KEY, 1)
    pipe.ltrim(RELAY_WAKE_KEY, 0, 0)  # one token says it all
    flag_raised, _, _ = pipe.execute()
    if flag_raised:
        current_app.tasks[RELAY_TASK].apply_async(expires=10)


def relay_request_clear() -> None:
    try:
        redis_client().delete(RELAY_REQUESTED_KEY)
    except redis.RedisError:
        logger.warning("Could not clear the relay request flag", exc_info=True)


def wait_for_wake_up(*, until: float) -> bool:
    """Wait for a commit's wake-up token until `until` (monotonic); keep the flag up meanwhile."""
    client = redis_client()
    try:
        while (left := until - time.monotonic()) > 0:
            client.pexpire(RELAY_REQUESTED_KEY, RELAY_FLAG_TTL_MS)
            # Redis reads a timeout that rounds to 0 ms as "forever".
            if client.blpop([RELAY_WAKE_KEY], timeout=max(min(left, 0.5), 0.01)):
                return True
    except redis.RedisError:
        logger.warning("Could not wait for relay wake-ups", exc_info=True)
    return False

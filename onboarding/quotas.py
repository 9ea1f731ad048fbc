"""Quotas (contract section 6): sliding windows kept in Redis, shared by every process.

Each quota is a setting of the form `N/period`: at most N requests in any window of that
length. One Redis script counts and checks in one step, on the server's clock, so requests
sent at once from many processes cannot slip past the count together (Ninja's own
SimpleRateThrottle reads and then writes its history through the cache: concurrent requests
all read the same history and all pass). The API applies them through Ninja's `throttle=`.

Redis down, a quota lets requests through: it protects capacity, it is not what keeps an
account safe (the sign-in limits of onboarding/lockout.py refuse instead).
"""

import logging
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

from config.redis import async_redis_client, redis_client
from onboarding.exceptions import RateLimited

logger = logging.getLogger(__name__)

_KEY_PREFIX = "wizard:quota:"
_RULE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Rule:
    limit: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> "Rule":
        """`N/period`: `5/15m`, `100/h`, `10/30s` (s, m, h or d, with an optional count)."""
        match = _RULE.match(text)
        if match is None or int(match[1]) < 1:
            raise ValueError(f"Not a rule of the form N/period (s, m, h, d): {text!r}")
        count = int(match[2]) if match[2] else 1
        return cls(limit=int(match[1]), window_seconds=count * _PERIOD_SECONDS[match[3]])


# KEYS[1]: the window. ARGV: limit, window (ms), a unique member. Answers 0 when the request
# is counted, else the milliseconds until the oldest counted one leaves the window.
_HIT_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


def _arguments(rule: Rule) -> list:
    return [rule.limit, rule.window_seconds * 1000, uuid.uuid4().hex]


def _retry_after(wait_ms: int) -> int:
    return max(1, math.ceil(wait_ms / 1000))


def quota_hit(scope: str, subject: str, rule: Rule) -> int:
    """Count one request of `subject` under `scope`; 0 if allowed, else seconds to wait."""
    try:
        wait_ms = redis_client().eval(
            _HIT_SCRIPT, 1, _KEY_PREFIX + f"{scope}:{subject}", *_arguments(rule)
        )
    except redis.RedisError:
        logger.warning("Quota %s not checked: Redis is unavailable", scope, exc_info=True)
        return 0
    return _retry_after(wait_ms) if wait_ms else 0


async def quota_hit_async(scope: str, subject: str, rule: Rule) -> int:
    """`quota_hit` from the event loop (the socket's own limits)."""
    key = _KEY_PREFIX + f"{scope}:{subject}"
    try:
        wait_ms = await async_redis_client().eval(_HIT_SCRIPT, 1, key, *_arguments(rule))
    except (redis.RedisError, OSError):
        logger.warning("Quota %s not checked: Redis is unavailable", scope, exc_info=True)
        return 0
    return _retry_after(wait_ms) if wait_ms else 0


def quota_spend(scope: str, subject: str, setting: str) -> None:
    """Count one request; RateLimited (429) past the quota named by `setting`."""
    retry_after = quota_hit(scope, subject, Rule.parse(getattr(settings, setting)))
    if retry_after:
        raise RateLimited(retry_after=retry_after)


class Quota(BaseThrottle):
    """A Ninja throttle over `quota_hit`: `throttle=Quota("writes", "RATE_LIMIT_WRITES", ...)`.

    Operations that pass the same instance share one count. The rule is read from the
    settings on each request, so a changed setting applies at once (and in tests).
    """

    def __init__(
        self, scope: str, setting: str, subject: Callable[[HttpRequest], str | None]
    ) -> None:
        self.scope, self.setting, self.subject = scope, setting, subject
        # Ninja shares throttle objects between the threads that serve requests, and asks
        # for `wait()` right after `allow_request()` in the same thread.
        self._last_wait = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        subject = self.subject(request)
        wait = 0
        if subject is not None:
            wait = quota_hit(self.scope, subject, Rule.parse(getattr(settings, self.setting)))
        self._last_wait.seconds = wait
        return not wait

    def wait(self) -> float | None:
        return getattr(self._last_wait, "seconds", None) or None


def per_user(request: HttpRequest) -> str | None:
    user = getattr(request, "auth", None)
    return str(user.pk) if user is not None else None

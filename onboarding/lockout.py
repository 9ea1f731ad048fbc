"""Limits on guessing passwords (contract section 6, "Brute force").

Two rules, each a sliding window of failed attempts kept in Redis (shared by every process):
`LOGIN_LOCKOUT_PER_ADDRESS` (default 5 in 15 minutes) for one account from one client
address, and `LOGIN_LOCKOUT_PER_ACCOUNT` (default 100 in an hour) for one account from
anywhere. Past either, attempts answer 429 until enough failures have left the window, even
with the right password, and they cost no password hashing.

An attempt is counted before its password is checked, in the same Redis script that checks
the limit, and taken back if the password was right: twenty guesses sent at once are hashed
five times, not twenty. The account is the user's id when the name exists (every spelling
that signs in to it shares one count), else the normalised name.

Hashing is bounded too: at most `PASSWORD_CHECK_CONCURRENCY` password hashes run at once in
a web process (sign-ins and registrations), and one more is refused at once (503, retry in a
second) instead of waiting: a guess at an account of its own costs ~0.5 s of a core, and
twenty of them at once would hold every HTTP thread.

django-axes was the first choice; see the README for why it is not used.
"""

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from redis.commands.core import Script

from config.redis import redis_client
from onboarding.exceptions import RateLimited, SignInBusy, SignInUnavailable
from onboarding.quotas import Rule

_KEY_PREFIX = "wizard:sign-in-failures:"


class SignInLockedOut(RateLimited):
    detail = "Too many failed sign-in attempts; try again later."


# KEYS: per (account, address), per account. ARGV: now (ms), attempt id, then limit and
# window (ms) of each key. Answers {1, 0} when the attempt is counted, {0, retry_after_ms}
# when a limit is reached (then nothing is counted).
_BEGIN_SCRIPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[1 + 2 * i])
    local window = tonumber(ARGV[2 + 2 * i])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
        -- The failure whose expiry brings the count below the limit.
        local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
        wait = math.max(wait, tonumber(entry[2]) + window - now)
    end
end
if wait > 0 then
    return {0, wait}
end
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('PEXPIRE', key, tonumber(ARGV[2 + 2 * i]))
end
return {1, 0}
"""


_scripts: dict[int, Script] = {}


def _begin_script() -> Script:
    client = redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_BEGIN_SCRIPT)
    return script


@dataclass
class Attempt:
    keys: list[str]
    member: str

    @contextmanager
    def hashing(self) -> Iterator[None]:
        """Check the password in one of the process's hashing slots; none free, the attempt
        is not counted (no password was checked) and SignInBusy is raised."""
        try:
            with password_hashing():
                yield
        except SignInBusy:
            self.succeeded()
            raise

    def succeeded(self) -> None:
        """The password was right, or never checked: the attempt is not a failure."""
        try:
            pipe = redis_client().pipeline(transaction=False)
            for key in self.keys:
                pipe.zrem(key, self.member)
            pipe.execute()
        except redis.RedisError:
            pass  # it stays counted as a failure until its window passes


def user_subject(user_id: int) -> str:
    return f"user:{user_id}"


def name_subject(username: str) -> str:
    normalised = AbstractBaseUser.normalize_username(username).strip().casefold()
    return "name:" + hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def _rules() -> tuple[Rule, Rule]:
    return (
        Rule.parse(settings.LOGIN_LOCKOUT_PER_ADDRESS),
        Rule.parse(settings.LOGIN_LOCKOUT_PER_ACCOUNT),
    )


def attempt_begin(*, subject: str, address: str) -> Attempt:
    """Count one password check for `subject` from `address`, or refuse it (SignInLockedOut).

    Redis unreachable: SignInUnavailable. Passwords are never checked without the limits.
    """
    per_address, per_account = _rules()
    address_digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    keys = [f"{_KEY_PREFIX}{subject}:{address_digest}", f"{_KEY_PREFIX}{subject}"]
    member = uuid.uuid4().hex
    arguments = [
        int(time.time() * 1000),
        member,
        per_address.limit,
        per_address.window_seconds * 1000,
        per_account.limit,
        per_account.window_seconds * 1000,
    ]
    try:
        counted, wait_ms = _begin_script()(keys=keys, args=arguments)
    except redis.RedisError as error:
        raise SignInUnavailable() from error
    if not counted:
        raise SignInLockedOut(retry_after=max(1, -(-int(wait_ms) // 1000)))
    return Attempt(keys=keys, member=member)


_hashing_slots: dict[int, threading.BoundedSemaphore] = {}  # by the setting's value
_hashing_slots_lock = threading.Lock()


@contextmanager
def password_hashing() -> Iterator[None]:
    """Hold one of the process's password-hashing slots, or raise SignInBusy at once."""
    count = settings.PASSWORD_CHECK_CONCURRENCY
    with _hashing_slots_lock:
        slots = _hashing_slots.setdefault(count, threading.BoundedSemaphore(count))
    if not slots.acquire(blocking=False):
        raise SignInBusy()
    try:
        yield
    finally:
        slots.release()


def client_address(meta: dict) -> str:
    """The client's address: the connection's, or the one `X-Forwarded-For` names behind
    `TRUSTED_PROXY_COUNT` proxies.

    Each proxy appends the address it was connected from, so with N trusted proxies the
    client is the N-th entry from the right; entries further left are the client's own
    words. With fewer entries than proxies, the leftmost one is the best there is.
    """
    trusted = settings.TRUSTED_PROXY_COUNT
    remote = meta.get("REMOTE_ADDR") or "unknown"
    if trusted <= 0:
        return remote
    forwarded = [
        entry.strip() for entry in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()
    ]
    if not forwarded:
        return remote
    return forwarded[-trusted] if len(forwarded) >= trusted else forwarded[0]


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend, with every password check under the attempt limits.

    Through `authenticate`, so the API's token and login and the admin's login page are all
    covered. A locked-out attempt raises SignInLockedOut before any hashing.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            user = None
        subject = user_subject(user.pk) if user is not None else name_subject(username)
        address = client_address(request.META) if request is not None else "local"
        attempt = attempt_begin(subject=subject, address=address)
        with attempt.hashing():
            if user is None:
                # Hash anyway: an unknown name takes as long to refuse as a wrong password.
                user_model().set_password(password)
                return None
            right = user.check_password(password)
        if right and self.user_can_authenticate(user):
            attempt.succeeded()
            return user
        return None

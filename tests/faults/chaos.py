"""The fault suite: prove that no socket misses an update while processes and servers die.

Against a private PostgreSQL cluster and Redis (tests/faults/cluster.py) it runs two uvicorn
web processes, one to three Celery workers and beat (sometimes two), all from the Procfile
through the e2e harness. It registers users over the REST API, keeps two or more sockets per
user open on both web processes (reconnecting with jittered backoff whenever one closes), and
writes status-changing data over HTTP the whole time. Meanwhile it injects faults one after
another: SIGKILL of a worker right after a burst of writes (the moment a batch is claimed
when it can catch one), SIGKILL of beat, a second beat, three workers relaying at once and
then killed together, SIGKILL and restart of a web process, a Redis restart, Redis gone for
3-5 s, a fast PostgreSQL restart, and revoked credentials: some users change their password
(`POST /api/v1/auth/password`) and an administrator ends all sessions of others (the
service the admin action calls, run by `manage.py shell` in a process of its own), after
which those users sign in again. Each user's writer and tabs then switch to the new access
token: a write refused with 401 because its token was just revoked is made again with the
new one, and a socket closed with 4401 reconnects with the new token, never the old one.

After each fault, once every process runs again, the writer pauses and the invariants are
checked against the database:

- every socket is open and its newest status (highest version received) equals the status
  `GET /api/v1/accounts/wizard-status` returns, timestamp aside, within 5 s of the fault's end;
- no socket received a lower version after a higher one; a (re)connected socket's first
  message is a status no older than any version already seen for that user;
- one (user, version) never carried two different statuses (sockets, HTTP reads, history);
- no outbox row is still pending once the claim timeout (3 s here) and a sweep have passed,
  and none failed;
- after revoked credentials: every socket opened with them was closed by the server with
  4401 (within 5 s), none reconnected with them after that, and every socket is open again
  with the user's new credentials (the convergence check above); no other socket, and no
  request with credentials never revoked, was refused (4401, or 401); each revocation moved
  the user's credentials generation on exactly once;
- the status history has one entry per (user, version), consecutive entries differ, and its
  newest entry is the user's current status.

The last line printed is the summary; the exit code is 1 if any invariant was violated.

    uv run python -m tests.faults.chaos --minutes 10     # the soak
    uv run python -m tests.faults.chaos --rounds 2       # the short form (the pytest test)
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

from tests.e2e.clients import PASSWORD, SOCKET_PATH
from tests.e2e.harness import PROJECT_ROOT, Harness, HarnessError, ManagedProcess
from tests.faults.cluster import PrivateCluster

CLAIM_TIMEOUT_SECONDS = 3.0  # OUTBOX_CLAIM_TIMEOUT of every process in the run
CONVERGENCE_SECONDS = 5.0  # the contract: sockets converge within 5 s of the faults' end
# Pending rows: a dead relay's claim expires, the next sweep (every 1 s) relays the rows.
OUTBOX_DRAIN_SECONDS = CLAIM_TIMEOUT_SECONDS + 5.0
LATE_WATCH_SECONDS = 10.0  # past a deadline, keep watching this long to report how late
HTTP_TIMEOUT_SECONDS = 15.0  # longer than a web process may wait for the database
RECONNECT_BASE_SECONDS = 0.1
RECONNECT_CAP_SECONDS = 1.0
POLL_SECONDS = 0.05
# A Celery worker takes 3-5 s to start on an idle 2-core machine, and far longer when other
# work shares the machine; the time a restart takes is not what the suite measures.
START_TIMEOUT_SECONDS = 120.0
STATUS_REREAD_SECONDS = 0.5  # a user still not converged has the database read again
# The credentials fault: this many users change their password, as many more have all their
# sessions ended by an administrator (a `manage.py shell` of its own: ~1-2 s to start).
CREDENTIAL_USERS = 6
SESSIONS_END_TIMEOUT_SECONDS = 90.0
CLOSE_UNAUTHENTICATED = 4401  # the socket's credentials are missing, invalid or revoked

FAULT_KINDS = (
    "worker_kill",
    "beat_kill",
    "second_beat",
    "three_workers",
    "web_kill",
    "redis_restart",
    "redis_outage",
    "postgres_restart",
    "credentials",
)
_UNKNOWN = object()  # a write's outcome is not known: look before the next one


def body(status: dict) -> dict:
    """A status without its timestamp: what must be equal for the same version."""
    return {key: value for key, value in status.items() if key != "timestamp"}


def content(status: dict) -> dict:
    """What a status says, whatever its version."""
    return {key: value for key, value in body(status).items() if key != "version"}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def format_faults(counts: Counter) -> str:
    return "{" + ", ".join(f"{kind}: {counts[kind]}" for kind in FAULT_KINDS) + "}"


@dataclass
class Config:
    rounds: int | None = 2
    minutes: float | None = None
    users: int = 50
    sockets_per_user: int = 2
    writers: int = 3
    write_gap_seconds: float = 0.05
    burst_writes: int = 60
    seed: int | None = None
    kinds: Sequence[str] = FAULT_KINDS
    keep: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))


@dataclass
class Result:
    writes: int = 0
    faults: Counter = field(default_factory=Counter)
    sockets_checked: int = 0
    violations: list[str] = field(default_factory=list)
    worst_convergence: float = 0.0
    worst_outbox_drain: float = 0.0
    content_only_matches: int = 0
    mid_batch_kills: int = 0
    reconnects: int = 0
    revoked_sockets: int = 0  # sockets opened with revoked credentials, closed with 4401
    worst_revoked_close: float = 0.0  # from a revocation's answer to such a socket's close
    writes_after_401: int = 0  # writes refused with just-revoked credentials, made again
    busy_answers: int = 0  # sign-ins, registrations, password changes answered 503, retried
    elapsed: float = 0.0

    @property
    def summary(self) -> str:
        return (
            f"fault-suite: writes={self.writes} faults={format_faults(self.faults)} "
            f"sockets_checked={self.sockets_checked} violations={len(self.violations)} "
            f"worst_convergence={self.worst_convergence:.2f}s"
        )


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


class Unauthorized(Exception):
    """A request was answered 401: its token was not accepted, so nothing was done."""

    def __init__(self, token: str) -> None:
        super().__init__("401")
        self.token = token


@dataclass(eq=False)
class ConnectionRecord:
    """One connection of a socket: the token it was opened with and how it ended."""

    token: str
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None  # the code the server's close frame carried, else 1006
    got_first: bool = False
    by_client_at: float | None = None  # when the tab closed it itself (churn, end of the run)


@dataclass(eq=False)
class Revocation:
    """One user's credentials revoked during a credentials fault."""

    user: "SuiteUser"
    how: str  # "password" or "sessions"
    tokens: set[str]  # the access tokens the revocation voids
    begun_at: float = field(default_factory=time.monotonic)
    answered_at: float = 0.0  # when the suite learnt the revocation committed


@dataclass(eq=False)
class SuiteUser:
    id: int
    username: str
    access: str
    password: str = PASSWORD
    # Access tokens whose revocation has begun: a 401 / 4401 with one of them is expected.
    revoked: set[str] = field(default_factory=set)
    # Cleared while the user's credentials are being replaced: a writer or a socket refused
    # with a revoked token waits here for the new one.
    ready: asyncio.Event = field(default_factory=_set_event)
    # What the writer believes the user's data is; None / _UNKNOWN after an unknown outcome.
    first_name: bool | None = False
    manual_prompt: bool | None = False
    channels: dict[str, Any] = field(default_factory=lambda: {"instagram": None, "telegram": None})
    max_seen: int = -1  # the highest version anyone saw for this user (all committed)
    sockets: list["SocketClient"] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


class SocketClient:
    """One browser tab: a socket that reconnects with full-jitter backoff whenever it closes."""

    def __init__(self, suite: "FaultSuite", user: SuiteUser, web: ManagedProcess, index: int):
        self.suite = suite
        self.user = user
        self.web = web
        self.label = f"user{user.id}/socket{index}@{web.name}"
        self.connection: Any = None
        self.open = False  # connected, and its first status received
        self.latest: dict | None = None  # the status with the highest version received
        self.connections = 0
        self.task: asyncio.Task | None = None
        self.token: str | None = None  # the access token of the current connection
        self.record: ConnectionRecord | None = None  # the current connection's
        self.records: list[ConnectionRecord] = []  # every connection, in order

    def url(self, token: str) -> str:
        return f"{self.web.ws_url(SOCKET_PATH)}?token={token}"

    async def run(self) -> None:
        failures = 0
        while not self.suite.stopping.is_set():
            floor = self.user.max_seen  # committed before this connect: the floor
            token = self.user.access  # like a browser: whatever token the tab holds now
            try:
                connection = await websockets.connect(
                    self.url(token), ping_interval=None, open_timeout=5, close_timeout=1
                )
            except (OSError, TimeoutError, websockets.WebSocketException):
                failures += 1
                if token in self.user.revoked:  # refused, maybe for it: get the new one
                    await self.suite.credentials(self.user)
                await self.suite.pause(self.backoff(failures))
                continue
            record = ConnectionRecord(token=token, opened_at=time.monotonic())
            self.records.append(record)
            self.connection, self.token, self.record = connection, token, record
            self.connections += 1
            got_first = False
            try:
                got_first = await self.receive(connection, floor)
            except websockets.ConnectionClosed:
                pass
            finally:
                self.open = False
                self.connection = None
                self.record = None
            code = connection.close_code
            record.closed_at, record.close_code, record.got_first = (
                time.monotonic(),
                code,
                got_first,
            )
            revoked = token in self.user.revoked
            if code in (4401, 4403, 4429) and not (code == CLOSE_UNAUTHENTICATED and revoked):
                self.suite.violation(
                    f"{self.label}: closed by the server with {code}"
                    + (" (its credentials were never revoked)" if code == 4401 else "")
                )
            failures = 0 if got_first else failures + 1
            if revoked:
                # Its credentials are void: reconnect only with the new ones, once known.
                await self.suite.credentials(self.user)
                failures = 0
            await self.suite.pause(self.backoff(failures))

    @staticmethod
    def backoff(failures: int) -> float:
        return random.uniform(0, min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2**failures))

    async def receive(self, connection: Any, floor: int) -> bool:
        highest = -1
        async for raw in connection:
            message = json.loads(raw)
            if message.get("type") != "wizard_status":
                self.suite.violation(f"{self.label}: unexpected message {message}")
                continue
            version = message["version"]
            if highest < 0:
                if version < floor:
                    self.suite.violation(
                        f"{self.label}: first message after connecting is v{version}, "
                        f"but v{floor} was already committed and seen"
                    )
                self.open = True
            elif version < highest:
                self.suite.violation(
                    f"{self.label}: received v{version} after v{highest} on one connection"
                )
            highest = max(highest, version)
            self.suite.observe(self.user, message, source=self.label)
            if self.latest is None or version >= self.latest["version"]:
                self.latest = message
        return highest >= 0

    async def close(self) -> None:
        connection = self.connection
        if connection is not None:
            if self.record is not None and self.record.by_client_at is None:
                self.record.by_client_at = time.monotonic()
            with contextlib.suppress(Exception):
                await connection.close()


class Writer:
    """Random status-changing writes over HTTP, to either web process; errors are tolerated:
    a failed write is not counted, and one with an unknown outcome is looked up next time.
    A write refused with 401 because its user's token was just revoked did nothing: it is
    made again with the user's new token."""

    def __init__(self, suite: "FaultSuite") -> None:
        self.suite = suite
        self.running = asyncio.Event()
        self.running.set()
        self.in_flight = 0
        self.made: Counter = Counter()
        self.after_401 = 0  # writes made again after a 401 for a just-revoked token

    @property
    def count(self) -> int:
        return sum(self.made.values())

    async def loop(self) -> None:
        while not self.suite.stopping.is_set():
            await self.running.wait()
            if self.suite.stopping.is_set():
                return
            await self.write(random.choice(self.suite.users))
            await self.suite.pause(random.uniform(0, self.suite.config.write_gap_seconds))

    async def burst(self, writes: int, users: Sequence[SuiteUser] | None = None) -> None:
        users = users or self.suite.users
        await asyncio.gather(*(self.write(random.choice(users)) for _ in range(writes)))

    async def drain(self) -> None:
        """Stop issuing writes and wait for those in flight (their outcome may be unknown)."""
        self.running.clear()
        await self.suite.until(
            lambda: self.in_flight == 0, HTTP_TIMEOUT_SECONDS * 3, "in-flight writes"
        )

    def resume(self) -> None:
        self.running.set()

    async def write(self, user: SuiteUser) -> None:
        self.in_flight += 1
        kind = random.choice(("first_name", "manual_prompt", "instagram", "telegram"))
        base = random.choice(self.suite.webs).url
        made = False
        try:
            for attempt in itertools.count():
                token = user.access
                try:
                    made = await self._write(user, kind, base, token)
                except Unauthorized:
                    # Refused before anything was done: what the writer believes still holds.
                    if token not in user.revoked:
                        self.suite.violation(
                            f"user {user.id}: a {kind} write was refused with 401, with a "
                            "token never revoked"
                        )
                    elif self.suite.stopping.is_set():
                        pass  # the run is ending: the new token may never come
                    elif attempt >= 3:
                        self.suite.violation(
                            f"user {user.id}: a {kind} write was still refused with 401 "
                            f"after {attempt + 1} tries with the user's newest token"
                        )
                    else:
                        await self.suite.credentials(user)
                        self.after_401 += 1
                        continue
                break
        except (httpx.HTTPError, ValueError):
            made = False
            self._forget(user, kind)
        finally:
            self.in_flight -= 1
        if made:
            self.made[kind] += 1

    @staticmethod
    def _forget(user: SuiteUser, kind: str) -> None:
        if kind in ("first_name", "manual_prompt"):
            setattr(user, kind, None)
        else:
            user.channels[kind] = _UNKNOWN

    async def _send(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        """One request with `token`; Unauthorized (before any belief changes) on a 401."""
        response = await self.suite.http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        if response.status_code == 401:
            raise Unauthorized(token)
        return response

    async def _write(self, user: SuiteUser, kind: str, base: str, token: str) -> bool:
        send = self._send
        if kind in ("first_name", "manual_prompt"):
            believed = getattr(user, kind)
            target = random.choice((True, False)) if believed is None else not believed
            if kind == "first_name":
                response = await send(
                    "PATCH",
                    f"{base}/api/v1/accounts/me",
                    token,
                    json={"first_name": "Ada" if target else ""},
                )
                made = response.status_code == 200
            elif target:
                response = await send(
                    "PUT",
                    f"{base}/api/v1/ai-prompts/manual",
                    token,
                    json={"content": "Answer briefly and kindly."},
                )
                made = response.status_code == 200
            else:
                response = await send("DELETE", f"{base}/api/v1/ai-prompts/manual", token)
                made = response.status_code == 204
            setattr(user, kind, target if made else None)
            return made

        channel = user.channels[kind]
        if channel is _UNKNOWN:  # look first; this read is not a write
            response = await send("GET", f"{base}/api/v1/channels", token)
            if response.status_code == 200:
                ids = [c["id"] for c in response.json() if c["platform"] == kind]
                user.channels[kind] = ids[0] if ids else None
            return False
        if channel is None:
            response = await send(
                "POST",
                f"{base}/api/v1/channels",
                token,
                json={"platform": kind, "external_id": f"faults-{user.id}-{kind}"},
            )
            if response.status_code in (200, 201):
                user.channels[kind] = response.json()["id"]
                return response.status_code == 201
        else:
            response = await send("DELETE", f"{base}/api/v1/channels/{channel}", token)
            if response.status_code in (204, 404):
                user.channels[kind] = None
                return response.status_code == 204
        user.channels[kind] = _UNKNOWN
        return False


class ConsoleError(RuntimeError):
    """The admin console died, answered nothing in time, or reported an error."""


# Run by `manage.py shell -c`: one JSON list of user ids a line on stdin, "end all sessions"
# for each (what the admin action does, as the admin `faults-admin`), one answer a line.
ADMIN_CONSOLE_CODE = """
import json, sys
from django.db import connection
from onboarding import sign_ins
from onboarding.models import User
from outbox.models import Actor

def answer(**fields):
    print("faults-admin-console: " + json.dumps(fields), flush=True)

def admin_id():
    admin = User.objects.filter(username="faults-admin").first()
    if admin is None:
        admin = User.objects.create_superuser("faults-admin", password=None)
    return admin.pk

admin_id()
connection.close()
answer(ready=True)
for line in sys.stdin:
    ended, error = [], None
    try:
        actor = Actor.admin(admin_id())
        for user_id in json.loads(line):
            sign_ins.user_sessions_end(user_id=user_id, actor=actor)
            ended.append(user_id)
    except Exception as exc:
        error = repr(exc)
    finally:
        connection.close()  # the next request connects afresh (PostgreSQL may restart)
    answer(ended=ended, error=error)
"""


class AdminConsole:
    """A Django process in the stack's environment (same database, Redis, broker and
    settings as the web processes) that runs "end all sessions" on request.

    This process has no Django of its own, and starting one per request costs 2-7 s on a
    busy 2-core machine, so the console starts with the stack and waits on its stdin. The
    service it calls, `sign_ins.user_sessions_end` with an admin actor, is what the admin
    action calls: the same commit, outbox row and relay nudge.
    """

    PREFIX = "faults-admin-console: "

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.log_file: Any = None
        self.ready = False
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file is None:
            self.log_file = self.log_path.open("ab")
        self.ready = False
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            ADMIN_CONSOLE_CODE,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            start_new_session=True,
        )

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    async def answer(self, timeout: float) -> dict:
        async def read() -> dict:
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    code = await self.process.wait()
                    raise ConsoleError(f"the admin console exited {code}:\n{self.tail()}")
                text = line.decode(errors="replace").strip()
                if text.startswith(self.PREFIX):
                    return json.loads(text[len(self.PREFIX) :])

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise ConsoleError(f"the admin console answered nothing in {timeout:g}s") from None

    async def end_sessions(self, user_ids: list[int]) -> list[int]:
        async with self.lock:
            if self.process is None or self.process.returncode is not None:
                await self.start()
            if not self.ready:
                await self.answer(START_TIMEOUT_SECONDS)
                self.ready = True
            self.process.stdin.write((json.dumps(user_ids) + "\n").encode())
            try:
                await self.process.stdin.drain()
                answer = await self.answer(SESSIONS_END_TIMEOUT_SECONDS)
            except (OSError, ConsoleError):
                await self.stop()  # started again on the next request
                raise
            if answer.get("error"):
                raise ConsoleError(f"ended {answer['ended']} of {user_ids}: {answer['error']}")
            return answer["ended"]

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self.ready = False


class FaultSuite:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.result = Result()
        self.stopping = asyncio.Event()
        self.users: list[SuiteUser] = []
        self.clients: list[SocketClient] = []
        self.writer = Writer(self)
        self.statuses: dict[tuple[int, int], tuple[str, str]] = {}  # (user, version) -> body
        self.started = time.monotonic()
        self.cluster: PrivateCluster | None = None
        self.harness: Harness | None = None
        self.webs: list[ManagedProcess] = []
        self.workers: list[ManagedProcess] = []  # three registered; the first few run
        self.beats: list[ManagedProcess] = []  # two registered; the second one sometimes
        self.baseline_workers = 1
        self.http: httpx.AsyncClient | None = None
        self.tasks: list[asyncio.Task] = []
        self.revocations: list[Revocation] = []  # of the last credentials fault, to check
        self.console: AdminConsole | None = None  # "end all sessions", as an administrator

    # Small tools

    def log(self, line: str) -> None:
        self.config.log(f"[{time.monotonic() - self.started:7.1f}s] {line}")

    def violation(self, description: str) -> None:
        self.result.violations.append(description)
        self.log(f"VIOLATION: {description}")

    async def pause(self, seconds: float) -> None:
        """Wait `seconds` unless the run is ending: backoffs, holds and the pause between
        polls are all this one wait on the stop event."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(seconds, 0))

    async def until(self, predicate: Callable[[], bool], timeout: float, describe: str) -> float:
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{describe} not reached within {timeout:g} s")
            await self.pause(POLL_SECONDS)
        return time.monotonic() - started

    def observe(self, user: SuiteUser, status: dict, *, source: str) -> None:
        """Every status anyone saw: the same (user, version) must always say the same."""
        version = status["version"]
        user.max_seen = max(user.max_seen, version)
        said = canonical(body(status))
        earlier = self.statuses.setdefault((user.id, version), (said, source))
        if earlier[0] != said:
            self.violation(
                f"user {user.id} v{version}: {source} got {said}, {earlier[1]} got {earlier[0]}"
            )

    async def credentials(self, user: SuiteUser) -> None:
        """Wait until the user's new credentials are known (at once if none are pending)."""
        while not user.ready.is_set() and not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(user.ready.wait(), 0.5)

    async def post_patiently(
        self, url: str, *, json: dict, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A POST that hashes a password, made again while it answers 503 with Retry-After
        (every hashing slot of the web process taken, or the sign-in limits unreachable):
        such an answer did nothing, and says when to come back."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            response = await self.http.post(url, json=json, headers=headers)
            retry_after = response.headers.get("Retry-After")
            if (
                response.status_code != 503
                or retry_after is None
                or time.monotonic() > deadline
                or self.stopping.is_set()
            ):
                return response
            self.result.busy_answers += 1
            await self.pause(min(float(retry_after), 5.0) * random.uniform(1.0, 1.5))

    async def in_thread(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    async def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """One statement on the private database, retried while it restarts."""
        deadline = time.monotonic() + 30
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.cluster.conninfo, autocommit=True, connect_timeout=2
                ) as connection:
                    cursor = await connection.execute(sql, params)
                    return await cursor.fetchall()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                await self.pause(0.2)

    # Setup

    async def start(self) -> None:
        config = self.config
        self.log("creating the private PostgreSQL cluster and Redis")
        self.cluster = await self.in_thread(PrivateCluster.create)
        self.log(
            f"PostgreSQL on 127.0.0.1:{self.cluster.pg_port}, Redis on "
            f"127.0.0.1:{self.cluster.redis.port}, files in {self.cluster.workdir}"
        )
        session = uuid.uuid4().hex[:10]
        self.harness = Harness(
            database_url=self.cluster.database_url,
            redis_url=self.cluster.redis_url,
            workdir=self.cluster.workdir / "processes",
            session_id=session,
            extra_env={
                "CELERY_BROKER_URL": self.cluster.redis_url,
                "CHANNEL_LAYER_PREFIX": f"faults-{session}",
                "OUTBOX_CLAIM_TIMEOUT": str(CLAIM_TIMEOUT_SECONDS),
                "DEBUG": "false",
                "SECRET_KEY": secrets.token_urlsafe(48),
                "DATABASE_POOL": "1",
                "FAST_PASSWORD_HASHER": "1",
                "JWT_ACCESS_TOKEN_LIFETIME": str(24 * 3600),
            },
        )
        if "credentials" in config.kinds:  # Django starts up while the stack does
            self.console = AdminConsole(
                self.harness.environment(), self.cluster.workdir / "processes" / "console.log"
            )
            await self.console.start()
        self.webs = [self.harness.add_web() for _ in range(2)]
        self.workers = [self.harness.add_worker() for _ in range(3)]
        self.beats = [self.harness.add_beat() for _ in range(2)]
        self.baseline_workers = random.randint(1, 2)
        self.log(f"starting 2 web processes, {self.baseline_workers} worker(s) and beat")
        await self.launch([*self.webs, *self.workers[: self.baseline_workers], self.beats[0]])
        self.http = httpx.AsyncClient(
            timeout=HTTP_TIMEOUT_SECONDS, limits=httpx.Limits(max_connections=200)
        )
        semaphore = asyncio.Semaphore(10)

        async def register(index: int) -> SuiteUser:
            async with semaphore:
                return await self.register(self.webs[index % 2].url)

        self.users = list(await asyncio.gather(*(register(i) for i in range(config.users))))
        for user in self.users:
            for index in range(config.sockets_per_user):
                client = SocketClient(self, user, self.webs[index % 2], index)
                user.sockets.append(client)
                self.clients.append(client)
                client.task = asyncio.create_task(client.run())
        await self.until(
            lambda: all(client.open for client in self.clients), 60, "every socket open"
        )
        self.log(f"{len(self.users)} users, {len(self.clients)} sockets open")
        self.tasks = [asyncio.create_task(self.writer.loop()) for _ in range(config.writers)]
        self.tasks.append(asyncio.create_task(self.churn()))

    async def register(self, base: str) -> SuiteUser:
        username = f"faults-{uuid.uuid4().hex[:12]}"
        credentials = {"username": username, "password": PASSWORD}
        registered = await self.post_patiently(f"{base}/api/v1/auth/register", json=credentials)
        registered.raise_for_status()
        tokens = await self.post_patiently(f"{base}/api/v1/auth/token", json=credentials)
        tokens.raise_for_status()
        return SuiteUser(
            id=registered.json()["id"], username=username, access=tokens.json()["access"]
        )

    async def churn(self) -> None:
        """Now and then a tab closes and reconnects: its first message must be current."""
        while not self.stopping.is_set():
            await self.pause(random.uniform(0.5, 2.0))
            # Not a tab opened with credentials being revoked: each of those sockets must be
            # closed by the server (4401), which a close of its own would hide.
            candidates = [
                client
                for client in self.clients
                if client.open and client.token not in client.user.revoked
            ]
            if candidates:
                await random.choice(candidates).close()

    async def stop(self) -> None:
        self.stopping.set()
        self.writer.running.set()
        for client in self.clients:
            await client.close()
        everything = [*self.tasks, *(client.task for client in self.clients if client.task)]
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()
        if self.console is not None:
            await self.console.stop()
            if self.console.log_file is not None:
                self.console.log_file.close()
        if self.harness is not None:
            await self.in_thread(self.harness.stop_all)
        if self.cluster is not None:
            self.cluster.keep = self.config.keep or bool(self.result.violations)
            if self.cluster.keep:
                self.log(f"kept the run's files (logs, data) in {self.cluster.workdir}")
            await self.in_thread(self.cluster.destroy)

    # Processes

    @property
    def expected_running(self) -> list[ManagedProcess]:
        return [*self.webs, *self.workers[: self.baseline_workers], self.beats[0]]

    async def launch(self, processes: Iterable[ManagedProcess]) -> None:
        """Start the given processes that are not running, in parallel; wait until ready."""
        stopped = [process for process in processes if not process.alive]
        if stopped:
            await self.in_thread(self.harness.launch, stopped, timeout=START_TIMEOUT_SECONDS)

    async def kill(self, processes: Sequence[ManagedProcess]) -> None:
        """SIGKILL several process groups at once, then reap them."""
        for process in processes:
            process.signal_group(signal.SIGKILL)
        for process in processes:
            await self.in_thread(process.kill)

    async def kill_mid_batch(self, processes: Sequence[ManagedProcess]) -> None:
        """A burst of writes, then SIGKILL the moment the relay holds a claimed batch
        (or once the burst is done, if no claim was caught in the act)."""
        burst = asyncio.create_task(self.writer.burst(self.config.burst_writes))
        caught = False
        deadline = time.monotonic() + 5
        with contextlib.suppress(psycopg.Error):
            async with await psycopg.AsyncConnection.connect(
                self.cluster.conninfo, autocommit=True
            ) as connection:
                while time.monotonic() < deadline and not (caught or burst.done()):
                    cursor = await connection.execute(
                        "SELECT count(*) FROM outbox_outboxevent WHERE relayed_at IS NULL "
                        "AND failed_at IS NULL AND claimed_until > now()"
                    )
                    caught = (await cursor.fetchone())[0] > 0
        await self.kill(processes)
        self.result.mid_batch_kills += caught
        await burst

    # Faults: each returns once every process it touched runs again.

    async def fault_worker_kill(self) -> str:
        worker = random.choice(self.workers[: self.baseline_workers])
        await self.kill_mid_batch([worker])
        await self.pause(random.uniform(0.5, 2.0))
        await self.launch([worker])
        return worker.name

    async def fault_beat_kill(self) -> str:
        await self.kill([self.beats[0]])
        await self.pause(random.uniform(1.0, 3.0))
        await self.launch([self.beats[0]])
        return self.beats[0].name

    async def fault_second_beat(self) -> str:
        second = self.beats[1]
        await self.launch([second])
        await self.pause(random.uniform(3.0, 6.0))
        if random.random() < 0.5:
            await self.kill([second])
        else:
            await self.in_thread(second.stop)
        return second.name

    async def fault_three_workers(self) -> str:
        await self.launch(self.workers)
        await self.writer.burst(self.config.burst_writes)
        await self.pause(random.uniform(1.0, 2.0))
        await self.kill_mid_batch(self.workers)
        await self.pause(random.uniform(0.5, 1.5))
        await self.launch(self.workers[: self.baseline_workers])
        return ",".join(worker.name for worker in self.workers)

    async def fault_web_kill(self) -> str:
        web = random.choice(self.webs)
        await self.kill([web])
        await self.pause(random.uniform(0.5, 2.0))
        await self.launch([web])
        return web.name

    async def fault_redis_restart(self) -> str:
        await self.in_thread(self.cluster.restart_redis)
        return f"redis:{self.cluster.redis.port}"

    async def fault_redis_outage(self) -> str:
        await self.in_thread(self.cluster.kill_redis)
        outage = random.uniform(3.0, 5.0)
        await self.pause(outage)
        await self.in_thread(self.cluster.start_redis)
        return f"redis:{self.cluster.redis.port} down {outage:.1f}s"

    async def fault_postgres_restart(self) -> str:
        await self.in_thread(self.cluster.restart_postgres)
        return f"postgres:{self.cluster.pg_port}"

    async def fault_credentials(self) -> str:
        """Some users change their password, an administrator ends all sessions of others,
        while writes flow (more of them for those users): everything they held is void."""
        count = max(1, min(CREDENTIAL_USERS, len(self.users) // 2))
        chosen = random.sample(self.users, min(2 * count, len(self.users)))
        changers, enders = chosen[:count], chosen[count:]
        before = await self.generations(chosen)
        done = asyncio.Event()

        async def trickle() -> None:  # writes of exactly these users, across the change
            writes: list[asyncio.Task] = []
            while not done.is_set():
                writes.append(asyncio.create_task(self.writer.write(random.choice(chosen))))
                await self.pause(random.uniform(0, 0.04))
            await asyncio.gather(*writes)

        writes = asyncio.create_task(trickle())
        try:
            await asyncio.gather(
                *(self.password_change(user, delay=random.uniform(0, 1.5)) for user in changers),
                self.sessions_end(enders),
            )
        finally:
            done.set()
            await writes
        after = await self.generations(chosen)
        for user in chosen:
            if after.get(user.id) != before.get(user.id, 0) + 1:
                self.violation(
                    f"credentials: user {user.id}'s credentials generation went from "
                    f"{before.get(user.id)} to {after.get(user.id)}, not on by one"
                )
        return (
            f"passwords of users {','.join(str(user.id) for user in changers)}; "
            f"sessions of users {','.join(str(user.id) for user in enders)}"
        )

    async def generations(self, users: Sequence[SuiteUser]) -> dict[int, int]:
        return dict(
            await self.query(
                "SELECT id, credentials_generation FROM onboarding_user WHERE id = ANY(%s)",
                ([user.id for user in users],),
            )
        )

    def revoke_begin(self, user: SuiteUser, how: str) -> Revocation:
        """From here on a 401 / 4401 with the user's token is expected, and waits for the
        next one."""
        user.ready.clear()
        user.revoked.add(user.access)
        revocation = Revocation(user=user, how=how, tokens={user.access})
        self.revocations.append(revocation)
        return revocation

    def revoke_end(self, revocation: Revocation, access: str | None) -> None:
        """The user's new token (None: nothing was revoked after all, the old one holds)."""
        user = revocation.user
        if access is None:
            user.revoked -= revocation.tokens
            self.revocations.remove(revocation)
        else:
            user.access = access
        user.ready.set()

    async def sign_in(self, user: SuiteUser) -> str | None:
        """`POST /auth/token` with the user's current password (never a wrong one: those
        count towards the sign-in limits); retried while a request fails outright."""
        deadline = time.monotonic() + HTTP_TIMEOUT_SECONDS * 2
        while True:
            base = random.choice(self.webs).url
            try:
                response = await self.post_patiently(
                    f"{base}/api/v1/auth/token",
                    json={"username": user.username, "password": user.password},
                )
            except httpx.HTTPError as error:
                if time.monotonic() > deadline:
                    self.violation(f"user {user.id}: could not sign in again: {error!r}")
                    return None
                await self.pause(0.2)
                continue
            if response.status_code == 200:
                return response.json()["access"]
            self.violation(
                f"user {user.id}: signing in again answered {response.status_code}: "
                f"{response.text[:200]}"
            )
            return None

    async def generation_moved(self, user: SuiteUser, before: int, *, wait: float) -> bool:
        """Whether a revocation of the user committed (polled for `wait` seconds)."""
        deadline = time.monotonic() + wait
        while True:
            moved = (await self.generations([user])).get(user.id, before) > before
            if moved or time.monotonic() >= deadline:
                return moved
            await self.pause(0.2)

    async def password_change(self, user: SuiteUser, *, delay: float) -> None:
        """`POST /auth/password` with the user's token: its answer is the new pair."""
        await self.pause(delay)
        new_password = secrets.token_urlsafe(12) + "-Qx"
        [before] = (await self.generations([user])).values()
        old = user.access
        revocation = self.revoke_begin(user, "password")
        response = None
        base = random.choice(self.webs).url
        try:
            with contextlib.suppress(httpx.HTTPError):  # its outcome is unknown
                response = await self.post_patiently(
                    f"{base}/api/v1/auth/password",
                    json={"current_password": user.password, "new_password": new_password},
                    headers={"Authorization": f"Bearer {old}"},
                )
            revocation.answered_at = time.monotonic()
            if response is not None and response.status_code == 200:
                user.password = new_password
                self.revoke_end(revocation, response.json()["access"])
                return
            if response is not None:
                self.violation(
                    f"user {user.id}: POST /auth/password via {base} answered "
                    f"{response.status_code}: {response.text[:200]}"
                )
            # Its outcome is unknown: the generation tells whether the change committed.
            wait = HTTP_TIMEOUT_SECONDS if response is None else 0
            if await self.generation_moved(user, before, wait=wait):
                user.password = new_password
                self.revoke_end(revocation, await self.sign_in(user) or old)
            else:
                self.revoke_end(revocation, None)
        finally:
            user.ready.set()

    async def sessions_end(self, users: Sequence[SuiteUser]) -> None:
        """The admin's "end all sessions" for each user (the service the admin action calls,
        in the admin console), then each signs in again with the unchanged password."""
        if not users:
            return
        before = await self.generations(users)
        revocations = [self.revoke_begin(user, "sessions") for user in users]
        try:
            try:
                await self.console.end_sessions([user.id for user in users])
            except ConsoleError as error:
                self.violation(f"credentials: ending the sessions of users failed: {error}")
            answered = time.monotonic()
            after = await self.generations(users)

            async def again(user: SuiteUser, revocation: Revocation) -> None:
                revocation.answered_at = answered
                if after.get(user.id, 0) > before.get(user.id, 0):
                    # Signed out everywhere, the user takes a moment to sign in again: their
                    # writes meet 401 and their tabs 4401 meanwhile.
                    await self.pause(random.uniform(0.2, 0.6))
                    self.revoke_end(revocation, await self.sign_in(user) or user.access)
                else:
                    self.revoke_end(revocation, None)

            await asyncio.gather(*map(again, users, revocations))
        finally:
            for user in users:
                user.ready.set()

    async def inject(self, kind: str) -> None:
        started = time.monotonic()
        target = await getattr(self, f"fault_{kind}")()
        self.result.faults[kind] += 1
        for process in self.expected_running:
            if not process.alive:
                self.violation(
                    f"after {kind}: {process.name} exited by itself "
                    f"({process.popen.returncode}); log tail:\n{process.tail(15)}"
                )
        await self.launch(self.expected_running)
        ended = time.monotonic()
        self.log(f"{kind} ({target}) over in {ended - started:.1f}s")
        await self.check(ended, kind)

    # Invariants

    async def check(self, ended: float, kind: str) -> None:
        await self.writer.drain()
        convergence = await self.check_sockets(ended, kind)
        revoked = self.check_revocations(kind)
        drained = await self.check_outbox(ended, kind)
        await self.check_history(kind)
        if drained is not None:  # the newest entry is only due once every row is relayed
            await self.check_history_is_current(kind)
        self.log(
            f"  checked after {kind}: sockets converged in "
            + (f"{convergence:.2f}s" if convergence is not None else "NEVER")
            + ", outbox drained in "
            + (f"{drained:.2f}s" if drained is not None else "NEVER")
            + (revoked or "")
            + f"; writes so far {self.writer.count}"
        )
        self.writer.resume()

    async def read_status(self, user: SuiteUser) -> dict | None:
        base = random.choice(self.webs).url
        try:
            response = await self.http.get(
                f"{base}/api/v1/accounts/wizard-status", headers=user.headers
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        status = response.json()
        self.observe(user, status, source=f"GET wizard-status via {base}")
        return status

    async def check_sockets(self, ended: float, kind: str) -> float | None:
        """Every socket open, its newest status the database's, within 5 s of `ended`.

        Statuses are read again while a user has not converged: a write whose request
        timed out may still commit late.
        """
        current: dict[int, tuple[float, dict]] = {}  # user id -> (read at, status)
        waiting = {user.id: user for user in self.users}
        give_up = ended + CONVERGENCE_SECONDS + LATE_WATCH_SECONDS
        semaphore = asyncio.Semaphore(16)

        async def refresh(user: SuiteUser) -> None:
            async with semaphore:
                status = await self.read_status(user)
            if status is not None:
                current[user.id] = (time.monotonic(), status)

        while True:
            now = time.monotonic()
            stale = [
                user
                for user in waiting.values()
                if user.id not in current or now - current[user.id][0] > STATUS_REREAD_SECONDS
            ]
            await asyncio.gather(*(refresh(user) for user in stale))
            for user in list(waiting.values()):
                if user.id in current and all(
                    self.socket_matches(client, current[user.id][1]) for client in user.sockets
                ):
                    del waiting[user.id]
            if not waiting:
                break
            if time.monotonic() > give_up:
                self.result.worst_convergence = max(self.result.worst_convergence, give_up - ended)
                for user in waiting.values():
                    status = current.get(user.id, (0, None))[1]
                    for client in user.sockets:
                        if status is None or not self.socket_matches(client, status):
                            self.violation(
                                f"after {kind}: {client.label} (open={client.open}) did not "
                                f"converge within {give_up - ended:.0f}s: has "
                                f"{client.latest and body(client.latest)}, database has "
                                f"{status and body(status)}"
                            )
                return None
            await self.pause(POLL_SECONDS)

        convergence = time.monotonic() - ended
        self.result.sockets_checked += len(self.clients)
        for user in self.users:
            for client in user.sockets:
                if client.latest["version"] != current[user.id][1]["version"]:
                    # Documented: a newer version with the same content is only noted by
                    # the consumer (README "Convergence, not trust in the push").
                    self.result.content_only_matches += 1
        self.result.worst_convergence = max(self.result.worst_convergence, convergence)
        if convergence > CONVERGENCE_SECONDS:
            self.violation(
                f"after {kind}: sockets converged only after {convergence:.2f}s "
                f"(limit {CONVERGENCE_SECONDS:g}s)"
            )
        return convergence

    @staticmethod
    def socket_matches(client: SocketClient, status: dict) -> bool:
        """Open with the user's current credentials and showing the database's status. The
        version may be older only when the content is the same: the consumer notes a newer
        version that changes nothing."""
        latest = client.latest
        if not client.open or latest is None or client.token != client.user.access:
            return False
        if latest["version"] == status["version"]:
            return body(latest) == body(status)
        return latest["version"] < status["version"] and content(latest) == content(status)

    def check_revocations(self, kind: str) -> str | None:
        """After revoked credentials (once every socket converged, or was found not to): each
        connection opened with them was closed by the server with 4401, within 5 s of the
        revocation's answer, and the tab did not come back with them after that 4401."""
        revocations, self.revocations = self.revocations, []
        if not revocations:
            return None
        now = time.monotonic()
        closed = 0
        worst = 0.0
        for revocation in revocations:
            for client in revocation.user.sockets:
                refusals = 0
                for record in client.records:
                    if record.token not in revocation.tokens:
                        continue  # other credentials
                    ended = min(record.closed_at or now, record.by_client_at or now)
                    if ended < revocation.begun_at:
                        continue  # closed (or closing) before the revocation began
                    if record.by_client_at is not None:  # churn leaves these sockets alone
                        self.violation(
                            f"after {kind}: {client.label} was closed by the suite while its "
                            f"credentials were being revoked ({revocation.how})"
                        )
                        continue
                    if record.closed_at is None:
                        self.violation(
                            f"after {kind}: {client.label} is still open with credentials "
                            f"revoked ({revocation.how}) {now - revocation.answered_at:.1f}s ago"
                        )
                        continue
                    if record.close_code != CLOSE_UNAUTHENTICATED:
                        self.violation(
                            f"after {kind}: {client.label}, opened with credentials revoked "
                            f"({revocation.how}), was closed with {record.close_code}, not "
                            f"{CLOSE_UNAUTHENTICATED}"
                        )
                        continue
                    refusals += 1
                    closed += 1
                    late = max(0.0, record.closed_at - revocation.answered_at)
                    worst = max(worst, late)
                    if late > CONVERGENCE_SECONDS:
                        self.violation(
                            f"after {kind}: {client.label} was closed with 4401 only {late:.2f}s "
                            f"after its credentials were revoked ({revocation.how})"
                        )
                if refusals > 1:
                    self.violation(
                        f"after {kind}: {client.label} reconnected with revoked credentials "
                        f"after a 4401: {refusals} connections with them closed with 4401"
                    )
        self.result.revoked_sockets += closed
        self.result.worst_revoked_close = max(self.result.worst_revoked_close, worst)
        self.result.writes_after_401 = self.writer.after_401
        return (
            f", {closed} sockets of {len(revocations)} users closed with 4401 within "
            f"{worst:.2f}s of the revocation, {self.writer.after_401} writes made again after "
            "a 401 so far"
        )

    async def check_outbox(self, ended: float, kind: str) -> float | None:
        """No row still pending once a dead relay's claim has expired and a sweep ran."""
        deadline = ended + OUTBOX_DRAIN_SECONDS
        while True:
            [(pending,)] = await self.query(
                "SELECT count(*) FROM outbox_outboxevent "
                "WHERE relayed_at IS NULL AND failed_at IS NULL"
            )
            if pending == 0:
                break
            if time.monotonic() > deadline:
                rows = await self.query(
                    "SELECT id, user_id, version, attempts, "
                    "round(extract(epoch FROM next_attempt_at - now())::numeric, 1), "
                    "round(extract(epoch FROM claimed_until - now())::numeric, 1), last_error "
                    "FROM outbox_outboxevent WHERE relayed_at IS NULL AND failed_at IS NULL "
                    "ORDER BY id LIMIT 5"
                )
                self.violation(
                    f"after {kind}: {pending} outbox rows still pending "
                    f"{time.monotonic() - ended:.1f}s after the faults ended (claim timeout "
                    f"{CLAIM_TIMEOUT_SECONDS:g}s); first ones (id, user, version, attempts, "
                    f"due in s, claim left s, error): {rows}"
                )
                return None
            await self.pause(POLL_SECONDS * 2)
        drained = time.monotonic() - ended
        self.result.worst_outbox_drain = max(self.result.worst_outbox_drain, drained)
        failed = await self.query(
            "SELECT id, user_id, version, attempts, last_error FROM outbox_outboxevent "
            "WHERE failed_at IS NOT NULL ORDER BY id"
        )
        if failed:
            self.violation(f"after {kind}: {len(failed)} outbox rows failed: {failed[:5]}")
        return drained

    async def check_history(self, kind: str) -> None:
        """One entry per (user, version), and consecutive entries of a user differ."""
        rows = await self.query(
            "SELECT user_id, version, status FROM onboarding_wizardstatushistory "
            "ORDER BY user_id, version"
        )
        by_user: dict[int, list[tuple[int, dict]]] = defaultdict(list)
        for user_id, version, status in rows:
            by_user[user_id].append((version, status))
        users = {user.id: user for user in self.users}
        for user_id, entries in by_user.items():
            for (before, earlier), (version, status) in itertools.pairwise(entries):
                if before == version:
                    self.violation(f"history: user {user_id} has two entries for v{version}")
                elif content(earlier) == content(status):
                    self.violation(
                        f"after {kind}: history of user {user_id}: v{before} and v{version} "
                        f"are consecutive entries with the same status {status['details']}"
                    )
            for _, status in entries:
                self.observe(users[user_id], status, source="history")

    async def check_history_is_current(self, kind: str) -> None:
        """With every row relayed, each user's newest history entry is their current status
        (a user never changed has no entry). Polled for a while: a late write's row may
        still be on its way."""
        deadline = time.monotonic() + OUTBOX_DRAIN_SECONDS
        mismatches: dict[int, str] = {}
        while True:
            statuses = await asyncio.gather(*(self.read_status(user) for user in self.users))
            [(pending,)] = await self.query(
                "SELECT count(*) FROM outbox_outboxevent "
                "WHERE relayed_at IS NULL AND failed_at IS NULL"
            )
            newest = {
                user_id: (version, status)
                for user_id, version, status in await self.query(
                    "SELECT DISTINCT ON (user_id) user_id, version, status "
                    "FROM onboarding_wizardstatushistory ORDER BY user_id, version DESC"
                )
            }
            mismatches = {}
            for user, status in zip(self.users, statuses, strict=True):
                if status is None:
                    mismatches[user.id] = "its status could not be read"
                    continue
                entry = newest.get(user.id)
                untouched = not status["wizard_complete"] and not any(status["details"].values())
                if entry is None and untouched:
                    continue
                if entry is None or content(entry[1]) != content(status):
                    ends = f"v{entry[0]} {entry[1]['details']}" if entry else "no entry"
                    mismatches[user.id] = (
                        f"ends at {ends}, but the current status is v{status['version']} "
                        f"{status['details']}"
                    )
            if not mismatches and pending == 0:
                return
            if time.monotonic() > deadline:
                break
            await self.pause(POLL_SECONDS * 4)
        for user_id, description in mismatches.items():
            self.violation(f"after {kind}: the history of user {user_id} {description}")

    # The run

    def plan(self) -> Iterable[list[str]]:
        """Rounds of faults, each kind in random order; a fixed number of rounds covers
        every kind at least once between them."""
        kinds = list(self.config.kinds)
        if self.config.rounds is not None:
            # Each kind once (more rounds than kinds: some again), as evenly as can be.
            rounds = self.config.rounds
            total = max(len(kinds), rounds)
            stream: list[str] = []
            while len(stream) < total:
                stream += random.sample(kinds, len(kinds))
            per_round, longer = divmod(total, rounds)
            start = 0
            for index in range(rounds):
                end = start + per_round + (index < longer)
                yield stream[start:end]
                start = end
        else:
            while True:
                yield random.sample(kinds, len(kinds))

    async def run(self) -> Result:
        try:
            await self.start()
            chaos_started = time.monotonic()
            limit = None if self.config.minutes is None else self.config.minutes * 60
            for number, faults in enumerate(self.plan(), start=1):
                if limit is not None and time.monotonic() - chaos_started >= limit:
                    break
                self.log(f"round {number}: {', '.join(faults)}")
                for kind in faults:
                    if limit is not None and time.monotonic() - chaos_started >= limit:
                        break
                    await self.pause(random.uniform(0.5, 1.5))  # writes flow between faults
                    try:
                        await self.inject(kind)
                    except HarnessError as error:  # nothing sound can follow: end the run
                        self.violation(f"during {kind}: a process did not come back: {error}")
                        return self.result
        finally:
            self.result.writes = self.writer.count
            self.result.reconnects = sum(c.connections for c in self.clients) - len(self.clients)
            self.result.writes_after_401 = self.writer.after_401
            self.result.elapsed = time.monotonic() - self.started
            await self.stop()
        return self.result


async def run(config: Config) -> Result:
    if config.seed is not None:
        random.seed(config.seed)
    return await FaultSuite(config).run()


def report(result: Result, out=sys.stdout) -> None:
    """The violations (if any), a line of detail, then the one summary line."""
    for violation in result.violations:
        print(f"violation: {violation}", file=out)
    print(
        f"fault-suite detail: elapsed={result.elapsed:.0f}s reconnects={result.reconnects} "
        f"mid_batch_kills={result.mid_batch_kills} "
        f"worst_outbox_drain={result.worst_outbox_drain:.2f}s "
        f"sockets_matching_by_content_only={result.content_only_matches} "
        f"revoked_sockets_closed={result.revoked_sockets} "
        f"worst_revoked_close={result.worst_revoked_close:.2f}s "
        f"writes_after_401={result.writes_after_401} "
        f"auth_busy_retries={result.busy_answers}",
        file=out,
    )
    print(result.summary, file=out, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    duration = parser.add_mutually_exclusive_group()
    duration.add_argument("--minutes", type=float, help="run rounds until this much time passed")
    duration.add_argument("--rounds", type=int, help="run this many rounds (default 2)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--sockets-per-user", type=int, default=2)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--faults", help=f"comma-separated kinds to inject (default all: {','.join(FAULT_KINDS)})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's files and logs")
    arguments = parser.parse_args(argv)
    kinds = FAULT_KINDS
    if arguments.faults:
        kinds = tuple(arguments.faults.split(","))
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            parser.error(f"unknown fault kinds: {sorted(unknown)}")
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    print(f"fault-suite: seed {seed}", file=sys.stderr)
    config = Config(
        rounds=None if arguments.minutes is not None else (arguments.rounds or 2),
        minutes=arguments.minutes,
        users=arguments.users,
        sockets_per_user=arguments.sockets_per_user,
        seed=seed,
        kinds=kinds,
        keep=arguments.keep,
    )
    result = asyncio.run(run(config))
    report(result)
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fault suite: prove that no socket misses an update while processes and servers die.

Against a private PostgreSQL cluster and Redis (tests/faults/cluster.py) it runs two uvicorn
web processes, one to three Celery workers and beat (sometimes two), all from the Procfile
through the e2e harness. It registers users over the REST API, keeps two or more sockets per
user open on both web processes (reconnecting with jittered backoff whenever one closes), and
writes status-changing data over HTTP the whole time. Meanwhile it injects faults one after
another: SIGKILL of a worker right after a burst of writes (the moment a batch is claimed
when it can catch one), SIGKILL of beat, a second beat, three workers relaying at once and
then killed together, SIGKILL and restart of a web process, a Redis restart, Redis gone for
3-5 s, and a fast PostgreSQL restart.

After each fault, once every process runs again, the writer pauses and the invariants are
checked against the database:

- every socket is open and its newest status (highest version received) equals the status
  `GET /api/v1/accounts/wizard-status` returns, timestamp aside, within 5 s of the fault's end;
- no socket received a lower version after a higher one; a (re)connected socket's first
  message is a status no older than any version already seen for that user;
- one (user, version) never carried two different statuses (sockets, HTTP reads, history);
- no outbox row is still pending once the claim timeout (3 s here) and a sweep have passed,
  and none failed;
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
import math
import random
import secrets
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import websockets

from tests.e2e.clients import PASSWORD, SOCKET_PATH
from tests.e2e.harness import Harness, HarnessError, ManagedProcess
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

FAULT_KINDS = (
    "worker_kill",
    "beat_kill",
    "second_beat",
    "three_workers",
    "web_kill",
    "redis_restart",
    "redis_outage",
    "postgres_restart",
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
    elapsed: float = 0.0

    @property
    def summary(self) -> str:
        return (
            f"fault-suite: writes={self.writes} faults={format_faults(self.faults)} "
            f"sockets_checked={self.sockets_checked} violations={len(self.violations)} "
            f"worst_convergence={self.worst_convergence:.2f}s"
        )


@dataclass(eq=False)
class SuiteUser:
    id: int
    username: str
    access: str
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

    @property
    def url(self) -> str:
        return f"{self.web.ws_url(SOCKET_PATH)}?token={self.user.access}"

    async def run(self) -> None:
        failures = 0
        while not self.suite.stopping.is_set():
            floor = self.user.max_seen  # committed before this connect: the floor
            try:
                connection = await websockets.connect(
                    self.url, ping_interval=None, open_timeout=5, close_timeout=1
                )
            except (OSError, TimeoutError, websockets.WebSocketException):
                failures += 1
                await self.suite.pause(self.backoff(failures))
                continue
            self.connection = connection
            self.connections += 1
            got_first = False
            try:
                got_first = await self.receive(connection, floor)
            except websockets.ConnectionClosed:
                pass
            finally:
                self.open = False
                self.connection = None
            code = connection.close_code
            if code in (4401, 4403, 4429):
                self.suite.violation(f"{self.label}: closed by the server with {code}")
            failures = 0 if got_first else failures + 1
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
            with contextlib.suppress(Exception):
                await connection.close()


class Writer:
    """Random status-changing writes over HTTP, to either web process; errors are tolerated:
    a failed write is not counted, and one with an unknown outcome is looked up next time."""

    def __init__(self, suite: "FaultSuite") -> None:
        self.suite = suite
        self.running = asyncio.Event()
        self.running.set()
        self.in_flight = 0
        self.made: Counter = Counter()

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

    async def burst(self, writes: int) -> None:
        await asyncio.gather(*(self.write(random.choice(self.suite.users)) for _ in range(writes)))

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
        try:
            made = await self._write(user, kind, random.choice(self.suite.webs).url)
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

    async def _write(self, user: SuiteUser, kind: str, base: str) -> bool:
        http = self.suite.http
        headers = user.headers
        if kind in ("first_name", "manual_prompt"):
            believed = getattr(user, kind)
            target = random.choice((True, False)) if believed is None else not believed
            if kind == "first_name":
                response = await http.patch(
                    f"{base}/api/v1/accounts/me",
                    json={"first_name": "Ada" if target else ""},
                    headers=headers,
                )
                made = response.status_code == 200
            elif target:
                response = await http.put(
                    f"{base}/api/v1/ai-prompts/manual",
                    json={"content": "Answer briefly and kindly."},
                    headers=headers,
                )
                made = response.status_code == 200
            else:
                response = await http.delete(f"{base}/api/v1/ai-prompts/manual", headers=headers)
                made = response.status_code == 204
            setattr(user, kind, target if made else None)
            return made

        channel = user.channels[kind]
        if channel is _UNKNOWN:  # look first; this read is not a write
            response = await http.get(f"{base}/api/v1/channels", headers=headers)
            if response.status_code == 200:
                ids = [c["id"] for c in response.json() if c["platform"] == kind]
                user.channels[kind] = ids[0] if ids else None
            return False
        if channel is None:
            response = await http.post(
                f"{base}/api/v1/channels",
                json={"platform": kind, "external_id": f"faults-{user.id}-{kind}"},
                headers=headers,
            )
            if response.status_code in (200, 201):
                user.channels[kind] = response.json()["id"]
                return response.status_code == 201
        else:
            response = await http.delete(f"{base}/api/v1/channels/{channel}", headers=headers)
            if response.status_code in (204, 404):
                user.channels[kind] = None
                return response.status_code == 204
        user.channels[kind] = _UNKNOWN
        return False


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
        registered = await self.http.post(f"{base}/api/v1/auth/register", json=credentials)
        registered.raise_for_status()
        tokens = await self.http.post(f"{base}/api/v1/auth/token", json=credentials)
        tokens.raise_for_status()
        return SuiteUser(
            id=registered.json()["id"], username=username, access=tokens.json()["access"]
        )

    async def churn(self) -> None:
        """Now and then a tab closes and reconnects: its first message must be current."""
        while not self.stopping.is_set():
            await self.pause(random.uniform(0.5, 2.0))
            candidates = [client for client in self.clients if client.open]
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
        drained = await self.check_outbox(ended, kind)
        await self.check_history(kind)
        if drained is not None:  # the newest entry is only due once every row is relayed
            await self.check_history_is_current(kind)
        self.log(
            f"  checked after {kind}: sockets converged in "
            + (f"{convergence:.2f}s" if convergence is not None else "NEVER")
            + ", outbox drained in "
            + (f"{drained:.2f}s" if drained is not None else "NEVER")
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
        """Open and showing the database's status. The version may be older only when the
        content is the same: the consumer notes a newer version that changes nothing."""
        latest = client.latest
        if not client.open or latest is None:
            return False
        if latest["version"] == status["version"]:
            return body(latest) == body(status)
        return latest["version"] < status["version"] and content(latest) == content(status)

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
            per_round = max(1, math.ceil(len(kinds) / self.config.rounds))
            stream: list[str] = []
            while len(stream) < per_round * self.config.rounds:
                stream += random.sample(kinds, len(kinds))
            for index in range(self.config.rounds):
                yield stream[index * per_round : (index + 1) * per_round]
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
        f"sockets_matching_by_content_only={result.content_only_matches}",
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

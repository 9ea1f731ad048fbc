"""Reconnect storm after a deploy, on real processes.

    uv run python -m tests.benchmark_storm --clients 50
    uv run python -m tests.benchmark_storm --clients 1000
    uv run python -m tests.benchmark_storm --rule jitter --auth ticket

Starts the Procfile's web (one uvicorn worker: WEB_CONCURRENCY=1), Celery worker and beat
against a PostgreSQL database of its own (`wizard_status_storm`, recreated each run) and
Redis database 14 (emptied), and opens one socket to `/ws/wizard-status/` for each of
`--clients` users, all from one asyncio process. Then it restarts the web process the way a
deploy does: SIGTERM to its process group (uvicorn closes every socket with 1012), and once
it has exited the same command on the same port. Every client reconnects by its rule:

- `jitter`, the service's browser client (contract section 7): after a close it did not ask
  for, a delay uniformly random in [0, min(20 s, 0.5 s x 2^attempt)], the attempt counted
  from 0, one more after each failed attempt, back to 0 once a connection has delivered its
  first status; after a 4429 the cap (20 s); fresh credentials before every attempt. (The
  browser client also starts polling the HTTP fallback after 3 failed handshakes: not
  simulated, the clients that would have are counted.)
- `fixed`, the frontend guide's hook: exactly 3 s after every close, the same URL each time.

`--rule both` (the default) runs the two one after the other on the same stack, each with a
restart of its own, and prints them side by side:

- how many clients saw 1012; how long the old process took to exit and the new one from
  spawn to accepting TCP connections;
- the time from the SIGTERM until every client holds the current status again (the first
  `wizard_status` of a new connection), and how many statuses had another version than the
  client held before the restart (each user has a version of their own; nothing changes);
- attempts (per client, per second), accepted handshakes (101) per second, client side;
- the database's work per successful reconnect: transactions (`pg_stat_database`) and
  sequential plus index scans (`pg_stat_user_tables`, per table too), or statements if
  pg_stat_statements is loaded. Counted from the moment the old process is gone (its
  backends flush their statistics as they exit) to that moment of the next restart or the
  final stop, less the idle stack's own work (relay sweeps, the reconciler) measured
  beforehand over as long;
- `wizard_socket_connections` as the last client came back and `--quiet` seconds later;
- the web processes' WARNING and worse log lines.

`--auth token` (the default) puts the access token in the URL. `--auth ticket` makes each
attempt POST /api/v1/realtime/ticket with the token first, and counts those requests (the
guide's hook would reuse its spent ticket and never get back in; here the fixed rule fetches
a new one too, so only the timing differs). The per-user limits a storm from one address
meets are lifted: handshakes, tickets and sockets per user.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis
import websockets
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.benchmark import (
    Processes,
    bench_environment,
    create_users,
    free_port,
    http_ok,
    log_contains,
    percentile,
    poll,
    recreate_database,
    run_until_stopped,
    setup_django,
)
from tests.e2e.harness import async_wait_until, procfile_command, with_options

ROOT = Path(__file__).resolve().parent.parent
STORM_DB = "wizard_status_storm"
STORM_REDIS_URL = os.environ.get("BENCH_STORM_REDIS_URL", "redis://127.0.0.1:6379/14")
MAX_FRAME_BYTES = 4096
CLOSE_SERVICE_RESTART = 1012
CLOSE_TOO_MANY_SOCKETS = 4429
OPEN_ALL_SECONDS = 60.0  # a client's first socket, tried once a second until then
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
FIXED_DELAY_SECONDS = 3.0
# An idle PostgreSQL backend that flushed its statistics less than a second before its last
# transaction holds the rest back until PGSTAT_IDLE_INTERVAL (10 s) has passed: the web's
# pooled connections do, once the sockets are open.
STATS_FLUSH_SECONDS = 10.5
# A backend exits as soon as it reads the end of its client's connection.
BACKENDS_EXIT_SECONDS = 0.5
# The settings' log format, or uvicorn's own ("ERROR:    ...").
LOG_LINE = re.compile(r"^(\S+ \S+ )?(?P<message>(WARNING|ERROR|CRITICAL):? .*)$")


# The rules: seconds to wait before the next attempt, given the failed attempts since the
# last status and the code of the close that ended the last one (None: no socket).
def jitter_delay(failures: int, close_code: int | None) -> float:
    if close_code == CLOSE_TOO_MANY_SOCKETS:
        return BACKOFF_CAP_SECONDS
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**failures))


def fixed_delay(failures: int, close_code: int | None) -> float:
    return FIXED_DELAY_SECONDS


RetryRule = Callable[[int, int | None], float]
RULES: dict[str, RetryRule] = {
    "jitter": jitter_delay,
    "fixed": fixed_delay,
}


@dataclass
class Attempt:
    started: float  # time.monotonic(), as every instant below
    outcome: str  # "status", or why it failed
    handshake_at: float | None = None  # when the server accepted it (101)
    ended_at: float = 0.0  # when it failed or delivered its status


@dataclass
class StormRecord:
    """What happened to one client in one storm."""

    version_before: int | None
    close_code: int | None = None  # of the close the restart caused
    closed_at: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    current_at: float | None = None  # its first status after the restart
    version_after: int | None = None
    tickets: int = 0
    ticket_failures: int = 0


@dataclass
class Client:
    user_id: int
    token: str
    ws: ClientConnection | None = None
    version: int | None = None  # of the newest status received
    storm: StormRecord | None = None


@dataclass
class Opened:
    outcome: str
    ws: ClientConnection | None = None
    status: dict | None = None
    handshake_at: float | None = None
    close_code: int | None = None


class TicketFailed(Exception):
    def __init__(self, outcome: str, retry_after: float | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.retry_after = retry_after


@dataclass
class Auth:
    """How a client gets the URL of an attempt: its token, or a ticket fetched first."""

    kind: str
    ws_url: str
    http: httpx.AsyncClient
    open_timeout: float

    async def url(self, client: Client) -> str:
        if self.kind == "token":
            return f"{self.ws_url}?token={client.token}"
        return f"{self.ws_url}?ticket={await self.ticket(client)}"

    async def ticket(self, client: Client) -> str:
        record = client.storm
        if record is not None:
            record.tickets += 1
        try:
            response = await self.http.post(
                "/api/v1/realtime/ticket", headers={"Authorization": f"Bearer {client.token}"}
            )
        except httpx.HTTPError as error:
            failure = TicketFailed(f"ticket {type(error).__name__}")
        else:
            if response.status_code == 201:
                return response.json()["ticket"]
            retry_after = response.headers.get("Retry-After")
            failure = TicketFailed(
                f"ticket {response.status_code}",
                float(retry_after) if response.status_code == 429 and retry_after else None,
            )
        if record is not None:
            record.ticket_failures += 1
        raise failure


async def open_socket(url: str, open_timeout: float) -> Opened:
    """One attempt: the handshake, then the first status."""
    try:
        ws = await websockets.connect(
            url,
            open_timeout=open_timeout,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            ping_interval=None,  # the browser client pings in JSON, after 25 s of silence
            close_timeout=1,
            proxy=None,
        )
    except ConnectionRefusedError:
        return Opened("refused")
    except TimeoutError:
        return Opened("open timeout")
    except InvalidStatus as error:
        return Opened(f"http {error.response.status_code}")
    except (InvalidHandshake, OSError) as error:
        return Opened(f"handshake {type(error).__name__}")
    handshake_at = time.monotonic()
    try:
        async with asyncio.timeout(open_timeout):
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "wizard_status":
                    return Opened("status", ws, message, handshake_at)
    except ConnectionClosed as error:
        code = error.rcvd.code if error.rcvd is not None else 1006
        return Opened(f"closed {code}", handshake_at=handshake_at, close_code=code)
    except TimeoutError:
        await ws.close()
        return Opened("no status", handshake_at=handshake_at)


async def held(client: Client) -> int:
    """Read the client's socket until it closes: the close code (1006 without a close frame)."""
    try:
        while True:
            message = json.loads(await client.ws.recv())
            if message.get("type") == "wizard_status":
                client.version = message["version"]
    except ConnectionClosed as error:
        return error.rcvd.code if error.rcvd is not None else 1006


async def open_all(clients: list[Client], auth: Auth) -> None:
    """Each client's socket and first status, fifty handshakes at a time."""

    async def open_one(client: Client) -> None:
        async def opened() -> bool:
            attempt = await open_socket(await auth.url(client), auth.open_timeout)
            if attempt.status is not None:
                client.ws, client.version = attempt.ws, attempt.status["version"]
            return attempt.status is not None

        await async_wait_until(
            opened, OPEN_ALL_SECONDS, interval=1, describe=f"a socket of user {client.user_id}"
        )

    for start in range(0, len(clients), 50):
        await asyncio.gather(*(open_one(client) for client in clients[start : start + 50]))


async def storm_client(
    client: Client, rule: RetryRule, auth: Auth, on_current: Callable[[], None]
) -> None:
    """One client through a restart: wait for the close, then reconnect by `rule`."""
    record = client.storm
    code = await held(client) if client.ws is not None else None  # None: lost last time
    record.close_code, record.closed_at = code, time.monotonic()
    failures = 0
    wait: float | None = None
    while True:
        await asyncio.sleep(rule(failures, code) if wait is None else wait)
        started = time.monotonic()
        try:
            url = await auth.url(client)
        except TicketFailed as failed:
            record.attempts.append(Attempt(started, failed.outcome, None, time.monotonic()))
            failures, code, wait = failures + 1, None, failed.retry_after
            continue
        opened = await open_socket(url, auth.open_timeout)
        ended = time.monotonic()
        record.attempts.append(Attempt(started, opened.outcome, opened.handshake_at, ended))
        if opened.status is None:
            failures, code, wait = failures + 1, opened.close_code, None
            continue
        client.ws, client.version = opened.ws, opened.status["version"]
        failures, wait = 0, None
        if record.current_at is None:
            record.current_at = time.monotonic()
            record.version_after = client.version
            on_current()
        code = await held(client)


@dataclass
class WebProcess:
    procs: Processes
    port: int
    assignments: dict[str, str]
    argv: list[str]
    proc: subprocess.Popen | None = None
    starts: int = 0

    def spawn(self) -> None:
        self.starts += 1
        self.proc = self.procs.start(f"web-{self.starts}", self.argv, **self.assignments)

    def stop(self, timeout: float = 30) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def accepting(port: int, timeout: float = 60) -> None:
    """Until the port takes TCP connections (no HTTP request: it would touch the database)."""

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await async_wait_until(listening, timeout, interval=0.02, describe=f"port {port} listening")


@dataclass
class DbReading:
    at: float
    transactions: int
    tables: dict[str, tuple[int, int]]  # sequential and index scans of each table
    statements: int | None
    index: int  # how many readings this connection made before this one

    def counters(self) -> dict[str, float]:
        """Each counter by name, less this benchmark's own readings (one statement and one
        transaction each)."""
        values = {"transactions": self.transactions - self.index}
        if self.statements is not None:
            values["statements"] = self.statements - self.index
        for table, (seq, idx) in self.tables.items():
            values[f"seq {table}"], values[f"idx {table}"] = seq, idx
        return values


def rates_between(first: DbReading, last: DbReading) -> dict[str, float]:
    """Counter rates between two readings: with every socket idle, the stack's own work
    (relay sweeps, the reconciler)."""
    start, end = first.counters(), last.counters()
    return {name: (end[name] - start.get(name, 0)) / (last.at - first.at) for name in end}


class DatabaseWork:
    """The bench database's counters, read in one statement (one transaction) at a time."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.readings = 0
        self.statements = self._statements_available()

    def _statements_available(self) -> bool:
        preloaded = self.conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        if "pg_stat_statements" not in preloaded:
            return False
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return True

    def read(self) -> DbReading:
        statements = (
            ", (SELECT sum(calls) FROM pg_stat_statements WHERE dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()))"
            if self.statements
            else ", NULL"
        )
        row = self.conn.execute(
            "SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()), "
            "(SELECT json_object_agg(relname, json_build_array("
            "coalesce(seq_scan, 0), coalesce(idx_scan, 0))) FROM pg_stat_user_tables)"
            f"{statements}"
        ).fetchone()
        tables = {name: (seq, idx) for name, (seq, idx) in row[1].items()}
        reading = DbReading(time.monotonic(), int(row[0]), tables, row[2], self.readings)
        self.readings += 1
        return reading


def open_sockets_gauge(prometheus_dir: str) -> float | None:
    """`wizard_socket_connections` as /metrics sums it from the web's multiprocess files
    (GET /metrics would read the outbox tables in the middle of the measurement)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=prometheus_dir)
    return registry.get_sample_value("wizard_socket_connections")


@dataclass
class Deploy:
    sigterm_at: float = 0.0
    exited_at: float = 0.0
    spawned_at: float = 0.0
    accepting_at: float = 0.0
    # The counters once the old process is gone: its database connections closed with it,
    # and a backend flushes what it held back as it exits.
    stats_between: DbReading | None = None
    # Redis's connected clients (every process of the stack, this one's none) just before
    # the SIGTERM, and the most seen while the old process shut down and the new one started.
    redis_clients_before: int = 0
    redis_clients_peak: int = 0


async def stop_web(web: WebProcess, db: DatabaseWork) -> DbReading:
    await asyncio.to_thread(web.stop)
    return await read_later(db)


async def read_later(db: DatabaseWork) -> DbReading:
    await asyncio.sleep(BACKENDS_EXIT_SECONDS)
    return db.read()


async def watch_redis_clients(timing: Deploy, done: asyncio.Event) -> None:
    """Sample Redis's client count every 10 ms until `done`: each socket's disconnect handler
    talks to Redis, so a shutdown under many sockets shows there."""
    client = redis.Redis.from_url(STORM_REDIS_URL)
    try:
        while not done.is_set():
            count = (await asyncio.to_thread(client.info, "clients"))["connected_clients"]
            timing.redis_clients_peak = max(timing.redis_clients_peak, count)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.01)
    finally:
        client.close()


async def deploy(web: WebProcess, db: DatabaseWork, timing: Deploy) -> None:
    counter = redis.Redis.from_url(STORM_REDIS_URL)
    timing.redis_clients_before = counter.info("clients")["connected_clients"]
    counter.close()
    started = asyncio.Event()
    watcher = asyncio.create_task(watch_redis_clients(timing, started))
    timing.sigterm_at = time.monotonic()
    await asyncio.to_thread(web.stop)
    timing.exited_at = time.monotonic()
    web.spawn()
    timing.spawned_at = time.monotonic()
    # The new process imports Django for seconds before it opens a database connection.
    stats = asyncio.create_task(read_later(db))
    await accepting(web.port)
    timing.accepting_at = time.monotonic()
    started.set()
    await watcher
    timing.stats_between = await stats


@dataclass
class Bystanders:
    """Users whose sockets are on a second web process that no deploy touches, and whose
    status keeps changing through the storm (`--bystanders`, `--bystander-rate`): the
    latency of their pushes shows what the storm costs everyone else on the shared worker,
    PostgreSQL and Redis."""

    clients: list[Client]
    port: int
    rate: float
    committed: dict[tuple[int, int], float] = field(default_factory=dict)  # time.time()
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (committed, ms)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws/wizard-status/"
        for client in self.clients:
            opened = await open_socket(f"{url}?token={client.token}", 30)
            if opened.ws is None:
                raise RuntimeError(f"a bystander socket did not open: {opened.outcome}")
            client.ws = opened.ws
            self.tasks.append(asyncio.create_task(self.read(client)))
        self.tasks.append(asyncio.create_task(self.write()))

    async def read(self, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in client.ws:
                message = json.loads(frame)
                if message.get("type") == "wizard_status":
                    received = time.time()
                    committed = self.committed.pop((client.user_id, message["version"]), None)
                    if committed is not None:
                        self.latencies.append((committed, 1000 * (received - committed)))

    async def write(self) -> None:
        from tests.benchmark import lean_profile_update, next_first_name

        filled: dict[int, bool] = {}
        started = time.perf_counter()
        for n, client in enumerate(itertools.cycle(self.clients)):
            delay = started + n / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            value = next_first_name(filled, client.user_id)
            version = await asyncio.to_thread(
                lean_profile_update, user_id=client.user_id, first_name=value
            )
            self.committed[(client.user_id, version)] = time.time()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None))

    def between(self, start: float, end: float) -> list[float]:
        return [ms for committed, ms in self.latencies if start <= committed < end]


@dataclass
class Storm:
    rule: str
    deploy: Deploy
    records: list[StormRecord]
    sockets_gauge: tuple[float | None, float | None]  # as the last came back, and later
    # The database's counters when the storm's web process began, and when it was gone;
    # the idle stack's own work per second.
    before: DbReading | None = None
    after: DbReading | None = None
    background: dict[str, float] = field(default_factory=dict)
    bystander_ms: list[float] = field(default_factory=list)  # pushes while the storm lasted


async def run_storm(
    rule: str,
    clients: list[Client],
    web: WebProcess,
    auth: Auth,
    db: DatabaseWork,
    args: argparse.Namespace,
    bystanders: Bystanders | None = None,
) -> Storm:
    """Restart the web process under the clients; wait until they are all back (or for
    `--storm-timeout` seconds at most), then `--quiet` seconds for the server to catch up."""
    all_current = asyncio.Event()
    current = 0

    def on_current() -> None:
        nonlocal current
        current += 1
        if current == len(clients):
            all_current.set()

    for client in clients:
        client.storm = StormRecord(version_before=client.version)
    tasks = [
        asyncio.create_task(storm_client(client, RULES[rule], auth, on_current))
        for client in clients
    ]
    timing = Deploy()
    storm_from = time.time()
    restart = asyncio.create_task(deploy(web, db, timing))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.storm_timeout):
            await all_current.wait()
    storm_to = time.time()
    await restart
    prometheus_dir = web.procs.env["PROMETHEUS_MULTIPROC_DIR"]
    gauge = open_sockets_gauge(prometheus_dir)
    await asyncio.sleep(args.quiet)
    gauges = (gauge, open_sockets_gauge(prometheus_dir))
    for task in tasks:
        task.cancel()  # the sockets stay open for the next storm
    await asyncio.gather(*tasks, return_exceptions=True)
    storm = Storm(rule, timing, [client.storm for client in clients], gauges)
    if bystanders is not None:
        storm.bystander_ms = bystanders.between(storm_from, storm_to)
    return storm


async def measure(
    args: argparse.Namespace,
    clients: list[Client],
    web: WebProcess,
    auth: Auth,
    bystanders: Bystanders | None = None,
) -> tuple[list[Storm], list[float]]:
    """The storms, one after the other. Each one's database work is counted from the moment
    the old web process is gone to that moment of the next restart (or of the final stop)."""
    db = DatabaseWork(web.procs.env["DATABASE_URL"])
    await asyncio.sleep(STATS_FLUSH_SECONDS)  # until the opening handshakes' work is counted
    idle_from, quiet_from = db.read(), time.time()
    await asyncio.sleep(args.baseline)
    background = rates_between(idle_from, db.read())
    quiet_ms = bystanders.between(quiet_from, time.time()) if bystanders else []
    storms = []
    for rule in ("jitter", "fixed") if args.rule == "both" else (args.rule,):
        print(f"{rule}: restarting the web process under {len(clients)} sockets", flush=True)
        storms.append(await run_storm(rule, clients, web, auth, db, args, bystanders))
    await asyncio.gather(*(client.ws.close() for client in clients if client.ws is not None))
    last = await stop_web(web, db)
    db.conn.close()
    afters = [storm.deploy.stats_between for storm in storms[1:]] + [last]
    for storm, after in zip(storms, afters, strict=True):
        storm.before, storm.after, storm.background = storm.deploy.stats_between, after, background
    return storms, quiet_ms


def failed_first(record: StormRecord) -> int:
    """Failed attempts before the first status: from the third on, the browser client would
    also poll the HTTP fallback (not simulated here)."""
    failed = 0
    for attempt in record.attempts:
        if attempt.outcome == "status":
            break
        failed += 1
    return failed


def per_second(instants: list[float], origin: float) -> Counter:
    return Counter(int(at - origin) for at in instants)


def summary(storm: Storm, clients: int) -> dict[str, str]:
    """The table's column for one storm."""
    return {
        "clients": f"{clients}",
        **restart_rows(storm, clients),
        **attempt_rows(storm),
        **work_rows(storm),
    }


def restart_rows(storm: Storm, clients: int) -> dict[str, str]:
    records, timing = storm.records, storm.deploy
    origin = timing.sigterm_at
    back = [r.current_at - origin for r in records if r.current_at is not None]
    closed = [r.closed_at - origin for r in records if r.close_code == CLOSE_SERVICE_RESTART]
    others = Counter(r.close_code for r in records if r.close_code != CLOSE_SERVICE_RESTART)
    mismatches = sum(1 for r in records if r.current_at and r.version_after != r.version_before)
    return {
        "closed with 1012": f"{len(closed)}",
        "  other close codes": codes_line(others),
        "  1012 seen, p50 / max (s)": (
            f"{statistics.median(closed):.2f} / {max(closed):.2f}" if closed else "-"
        ),
        "web: SIGTERM -> exited (s)": f"{timing.exited_at - origin:.2f}",
        "web: spawn -> accepting (s)": f"{timing.accepting_at - timing.spawned_at:.2f}",
        "web: SIGTERM -> accepting (s)": f"{timing.accepting_at - origin:.2f}",
        "Redis clients: before / peak while restarting": (
            f"{timing.redis_clients_before} / {timing.redis_clients_peak}"
        ),
        "all current after (s)": f"{max(back):.2f}" if len(back) == clients else "never",
        "  p50 / p95 (s)": (
            f"{statistics.median(back):.2f} / {percentile(back, 0.95):.2f}" if back else "-"
        ),
        "never came back": f"{clients - len(back)}",
        "version mismatches": f"{mismatches}",
    }


def attempt_rows(storm: Storm) -> dict[str, str]:
    records, origin = storm.records, storm.deploy.sigterm_at
    attempts = [a for r in records for a in r.attempts]
    per_client = [len(r.attempts) for r in records]
    reconnects = successes(storm)
    tries = per_second([a.started for a in attempts], origin)
    handshakes = per_second([a.handshake_at for a in attempts if a.handshake_at], origin)
    waits = [a.ended_at - a.handshake_at for a in attempts if a.outcome == "status"]
    rows = {
        "attempts": f"{len(attempts)}",
        "  per client mean / max": f"{statistics.mean(per_client):.2f} / {max(per_client)}",
        "  failed": f"{len(attempts) - reconnects}",
    }
    failures = Counter(a.outcome for a in attempts if a.outcome != "status")
    rows |= {f"    {outcome}": f"{count}" for outcome, count in failures.most_common()}
    rows["  would poll HTTP (>= 3 failed)"] = f"{sum(1 for r in records if failed_first(r) >= 3)}"
    if any(r.tickets for r in records):
        rows["ticket requests / failed"] = (
            f"{sum(r.tickets for r in records)} / {sum(r.ticket_failures for r in records)}"
        )
    return rows | {
        "peak attempts/s": f"{max(tries.values(), default=0)}",
        "peak handshakes/s": f"{max(handshakes.values(), default=0)}",
        "successful reconnects": f"{reconnects}",
        "  101 -> status, p50 / max (s)": (
            f"{statistics.median(waits):.2f} / {max(waits):.2f}" if waits else "-"
        ),
    }


def work_rows(storm: Storm) -> dict[str, str]:
    work, raw = storm_work(storm), storm_work(storm, net=False)
    statements = (
        f"{work['statements']:.2f} ({raw['statements']:.2f})"
        if "statements" in work
        else "n/a: no pg_stat_statements"
    )
    gauges = " -> ".join("-" if gauge is None else f"{gauge:g}" for gauge in storm.sockets_gauge)
    return {
        "transactions / reconnect": f"{work['transactions']:.2f} ({raw['transactions']:.2f})",
        "table scans / reconnect": f"{scans(work):.2f} ({scans(raw):.2f})",
        "statements / reconnect": statements,
        "wizard_socket_connections": gauges,
    }


def storm_work(storm: Storm, *, net: bool = True) -> dict[str, float]:
    """Each counter's increase over the storm (see `measure`), per successful reconnect;
    `net`: less the idle stack's own work over as long."""
    before, after = storm.before.counters(), storm.after.counters()
    seconds = storm.after.at - storm.before.at if net else 0.0
    divisor = max(successes(storm), 1)
    return {
        name: (value - before.get(name, 0) - storm.background.get(name, 0) * seconds) / divisor
        for name, value in after.items()
    }


def successes(storm: Storm) -> int:
    return sum(1 for r in storm.records for a in r.attempts if a.outcome == "status")


def scans(counters: dict[str, float]) -> float:
    return sum(value for name, value in counters.items() if name.startswith(("seq ", "idx ")))


def codes_line(codes: Counter) -> str:
    return ", ".join(f"{count}x {code}" for code, count in codes.most_common()) or "-"


def print_table(storms: list[Storm], clients: int) -> None:
    columns = [summary(storm, clients) for storm in storms]
    labels = list(dict.fromkeys(label for column in columns for label in column))
    width = max(len(label) for label in labels) + 2
    cell = max(22, *(len(value) + 2 for column in columns for value in column.values()))
    print()
    print(" " * width + "".join(f"{storm.rule:>{cell}}" for storm in storms))
    for label in labels:
        values = "".join(f"{column.get(label, '-'):>{cell}}" for column in columns)
        print(f"{label:<{width}}{values}")


def print_table_scans(storms: list[Storm]) -> None:
    """Where the scans per reconnect go: sequential + index scans of each table, net."""
    works = [storm_work(storm) for storm in storms]
    tables = sorted(
        {name.split(" ", 1)[1] for work in works for name, v in work.items() if " " in name}
    )
    print("\ntable scans per reconnect, sequential + index (net)")
    print(" " * 34 + "".join(f"{storm.rule:>18}" for storm in storms))
    for table in tables:
        cells = [(work[f"seq {table}"], work[f"idx {table}"]) for work in works]
        if all(abs(seq) < 0.005 and abs(idx) < 0.005 for seq, idx in cells):
            continue
        print(f"{table:<34}" + "".join(f"{f'{seq:.2f} + {idx:.2f}':>18}" for seq, idx in cells))


def print_bystanders(bystanders: Bystanders, quiet_ms: list[float], storms: list[Storm]) -> None:
    def figures(values: list[float]) -> str:
        if not values:
            return "none"
        return (
            f"p50 {statistics.median(values):.1f} / p99 {percentile(values, 0.99):.1f} / "
            f"max {max(values):.1f} ms ({len(values)} pushes)"
        )

    print(
        f"\nunrelated pushes: {len(bystanders.clients)} sockets on a web process no deploy "
        f"touches, {bystanders.rate:g} changes/s, commit -> socket"
    )
    print(f"  {'before the storms':28s}{figures(quiet_ms)}")
    for storm in storms:
        print(f"  {'during the ' + storm.rule + ' storm':28s}{figures(storm.bystander_ms)}")


def print_timeline(storms: list[Storm]) -> None:
    """Attempts and accepted handshakes per second since the SIGTERM, per rule."""
    print("\nper second since the SIGTERM: attempts / accepted handshakes")
    rows = {}
    for storm in storms:
        origin = storm.deploy.sigterm_at
        attempts = [a for r in storm.records for a in r.attempts]
        tries = per_second([a.started for a in attempts], origin)
        handshakes = per_second([a.handshake_at for a in attempts if a.handshake_at], origin)
        rows[storm.rule] = (tries, handshakes)
    last = max((max(t | h, default=0) for t, h in rows.values()), default=0)
    print("  s " + "".join(f"{rule:>16}" for rule in rows))
    for second in range(last + 1):
        cells = "".join(f"{f'{t[second]} / {h[second]}':>16}" for t, h in rows.values())
        print(f"{second:>3} {cells}")


def web_log_problems(logs: Path) -> Counter:
    """The web processes' WARNING and worse lines (they log nothing less), by message."""
    problems: Counter = Counter()
    for path in sorted(logs.glob("web-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            match = LOG_LINE.match(line)
            if match is not None:
                problems[f"{path.name}: {match['message'][:160]}"] += 1
    return problems


def raise_open_file_limit(clients: int, *, per_client: int) -> None:
    """Each client holds a socket and, with tickets, an HTTP connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < per_client * clients + 100:
        raise SystemExit(f"the open-file limit ({soft}) is too low for {clients} clients")


def storm_environment(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """The benchmark's settings, with the per-user limits a storm from one address meets."""
    return {
        **bench_environment(database_url, redis_url, workdir),
        # A fixed 3-s rule makes 20 handshakes a minute per user; a restart can leave the
        # old process's socket leases in Redis for WEBSOCKET_LEASE_SECONDS.
        "WEBSOCKET_CONNECT_LIMIT": "1000000/h",
        "WEBSOCKET_MAX_SOCKETS_PER_USER": "1000",
        "RATE_LIMIT_TICKETS": "1000000/h",
        # The tokens minted at the start are used until the end of the run.
        "JWT_ACCESS_TOKEN_LIFETIME": "7200",
    }


def prepare_database(clients: int, env: dict[str, str]) -> list[Client]:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    setup_django(env["DATABASE_URL"], env)
    from django.db import connection

    users = create_users(clients)
    with connection.cursor() as cursor:
        # A version of its own per user, so a status sent to the wrong user would show.
        cursor.execute("UPDATE onboarding_onboardingprofile SET version = user_id")
    connection.close()
    return [Client(user_id, token) for user_id, token in users]


def start_stack(procs: Processes, workdir: Path) -> WebProcess:
    port = free_port()
    variables = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    assignments, argv = procfile_command("web", variables=variables)
    web = WebProcess(procs, port, assignments, with_options(argv, {"--log-level": "warning"}))
    web.spawn()
    for kind, variables, options in (
        ("worker", {"WORKER_CONCURRENCY": "2"}, {}),
        ("beat", {}, {"--loglevel": "WARNING", "--schedule": str(workdir / "beat-schedule")}),
    ):
        assignments, argv = procfile_command(kind, variables=variables)
        procs.start(kind, with_options(argv, options), **assignments)
    poll(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=60, what="the web process")
    poll(lambda: log_contains(workdir / "worker.log", "ready"), timeout=60, what="the worker")
    return web


async def run(args: argparse.Namespace) -> None:
    raise_open_file_limit(args.clients, per_client=2 if args.auth == "ticket" else 1)
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database_url = recreate_database(admin_url, STORM_DB)
    redis_url = STORM_REDIS_URL
    redis.Redis.from_url(redis_url).flushdb()  # no lease, ticket or task left from another run
    workdir = Path(tempfile.mkdtemp(prefix="wizard-storm-"))
    env = storm_environment(database_url, redis_url, workdir)
    everyone = prepare_database(args.clients + args.bystanders, env)
    clients, others = everyone[: args.clients], everyone[args.clients :]
    procs = Processes(env, workdir)
    try:
        web = start_stack(procs, workdir)
        bystanders = None
        if others:
            # A web process of their own, which the deploys leave alone.
            other = WebProcess(procs, free_port(), web.assignments, list(web.argv))
            other.argv[other.argv.index(str(web.port))] = str(other.port)
            other.assignments = {**web.assignments, "PORT": str(other.port)}
            other.starts = 100
            other.spawn()
            await accepting(other.port)
            bystanders = Bystanders(others, other.port, args.bystander_rate)
            await bystanders.start()
        await storms_reported(args, clients, web, workdir, bystanders)
    finally:
        procs.stop()
        print(f"logs: {workdir}")


async def storms_reported(
    args: argparse.Namespace,
    clients: list[Client],
    web: WebProcess,
    workdir: Path,
    bystanders: Bystanders | None = None,
) -> None:
    base = f"http://127.0.0.1:{web.port}"
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=base, timeout=args.open_timeout, limits=limits, trust_env=False
    ) as http:
        ws_url = base.replace("http", "ws", 1) + "/ws/wizard-status/"
        auth = Auth(args.auth, ws_url, http, args.open_timeout)
        await open_all(clients, auth)
        print(f"{len(clients)} sockets open (auth {args.auth}); measuring", flush=True)
        storms, quiet_ms = await measure(args, clients, web, auth, bystanders)
        if bystanders is not None:
            await bystanders.stop()
    print_table(storms, args.clients)
    if bystanders is not None:
        print_bystanders(bystanders, quiet_ms, storms)
    print_table_scans(storms)
    print_timeline(storms)
    background = storms[0].background
    print(
        "\nper reconnect: net of the idle stack's own work "
        f"({background['transactions']:.1f} transactions and {scans(background):.1f} table "
        "scans a second), raw in brackets;\nwizard_socket_connections: as the last client "
        f"came back -> {args.quiet:g} s later"
    )
    problems = web_log_problems(workdir)
    print(f"web log: {sum(problems.values())} lines at WARNING or worse")
    for message, count in problems.most_common(8):
        print(f"  {count:>5}x {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="users, one socket each")
    parser.add_argument("--rule", choices=("jitter", "fixed", "both"), default="both")
    parser.add_argument("--auth", choices=("token", "ticket"), default="token")
    parser.add_argument("--open-timeout", type=float, default=10, help="seconds per handshake")
    parser.add_argument(
        "--storm-timeout", type=float, default=120, help="seconds for every client to come back"
    )
    parser.add_argument(
        "--quiet", type=float, default=3, help="seconds after the storm before the next step"
    )
    parser.add_argument(
        "--baseline", type=float, default=3, help="seconds of idle stack measured beforehand"
    )
    parser.add_argument(
        "--bystanders",
        type=int,
        default=0,
        help="users with a socket on a second web process, their status changing throughout",
    )
    parser.add_argument(
        "--bystander-rate", type=float, default=20, help="the bystanders' changes per second"
    )
    run_until_stopped(run(parser.parse_args()))


if __name__ == "__main__":
    main()

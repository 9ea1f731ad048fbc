"""Commit-to-socket benchmark on real processes.

    uv run python -m tests.benchmark --users 1000 --rate 50 --duration 20
    uv run python -m tests.benchmark --users 1000 --rate 400 --duration 20

Starts uvicorn, a Celery worker and beat against a PostgreSQL database of its own
(`wizard_status_bench`, recreated each run) and the local Redis, opens one socket per user,
makes status-changing PATCH requests over HTTP at a fixed rate and prints commit->socket
latency percentiles, pushes per second and the web process's memory per idle socket.

The commit instant is the outbox row's `created_at` (stamped inside the writing
transaction, a fraction of a millisecond before COMMIT, so latencies are slightly
overstated); the receive instant is when the client read the frame. Both clocks are this
machine's wall clock.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import redis
import websockets

from tests.e2e.harness import procfile_command, with_options

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "wizard_status_bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn's worker processes)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += rss_kib(int(child))
    return total


def cpu_seconds(pid: int, *, reaped_children: bool = True) -> float:
    """CPU time of a process (and of its children that were reaped), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime stime cutime cstime
    ticks = sum(int(value) for value in fields[11 : 15 if reaped_children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += tree_cpu_seconds(int(child))
    return total


def server_cpu_seconds(program: str) -> dict[int, float]:
    """CPU seconds of every process named `program` on this machine, by pid. A server's
    exited children (PostgreSQL backends) count in their parent once it has reaped them."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == program:
                found[int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def cpu_used(before: float | dict[int, float], after: float | dict[int, float]) -> float:
    """CPU seconds between two samples of one process tree or of a server's processes."""
    if isinstance(after, dict):
        return sum(value - before.get(pid, 0.0) for pid, value in after.items())
    return after - before


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], **extra_env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def poll(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        pause.wait(interval)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def log_contains(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text(errors="replace")


def recreate_database(admin_url: str, name: str = BENCH_DB) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def bench_environment(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """What the benchmarked processes run with: production settings, a database of their own."""
    (workdir / "prom").mkdir(exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER_PREFIX": f"bench{os.getpid()}",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # The writers stand for a thousand people at once; a person's quota would cap them.
        "RATE_LIMIT_WRITES": "1000000/h",
        "WEBSOCKET_CONNECT_LIMIT": "1000000/h",
    }


def setup_django(database_url: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # This process only reads results with the ORM between its own awaits.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    import django

    django.setup()


def create_users(count: int) -> list[tuple[int, str]]:
    from onboarding.models import OnboardingProfile, User
    from onboarding.sign_ins import sign_in_start

    users = [User(username=f"bench{i}", password="!") for i in range(count)]
    User.objects.bulk_create(users, batch_size=1000)
    users = list(User.objects.order_by("pk"))
    OnboardingProfile.objects.bulk_create(
        [OnboardingProfile(user=user) for user in users], batch_size=1000
    )
    return [(user.pk, sign_in_start(user=user).access) for user in users]


async def open_sockets(ws_url: str, users, per_user: int):
    sockets = []

    async def open_one(user_id: int, token: str):
        ws = await websockets.connect(
            f"{ws_url}?token={token}", max_size=2**16, compression=None, open_timeout=30
        )
        first = json.loads(await ws.recv())
        sockets.append((user_id, ws, shown(first)))

    pending = [(uid, tok) for uid, tok in users for _ in range(per_user)]
    for start in range(0, len(pending), 50):
        await asyncio.gather(*(open_one(uid, tok) for uid, tok in pending[start : start + 50]))
    return sockets


async def run(args) -> dict:
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database_url = recreate_database(admin_url)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
    redis.Redis.from_url(redis_url).flushdb()  # no relay task left over from another run
    tmp = Path(tempfile.mkdtemp(prefix="wizard-bench-"))
    env = bench_environment(database_url, redis_url, tmp)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    setup_django(database_url, env)
    users = create_users(args.users)

    port = free_port()
    procs = Processes(env, tmp)
    # The Procfile's own command lines, so what is measured is what ships.
    for kind, variables, options in (
        (
            "web",
            {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(args.web_processes)},
            {"--log-level": "warning"},
        ),
        ("worker", {"WORKER_CONCURRENCY": str(args.worker_concurrency)}, {}),
        ("beat", {}, {"--loglevel": "WARNING", "--schedule": str(tmp / "beat-schedule")}),
    ):
        assignments, argv = procfile_command(kind, variables=variables)
        procs.start(kind, with_options(argv, options), **assignments)
    web = procs.procs["web"]
    try:
        base = f"http://127.0.0.1:{port}"
        poll(lambda: http_ok(f"{base}/healthz"), timeout=60, what="the web process")
        poll(lambda: log_contains(tmp / "worker.log", "ready"), timeout=60, what="the worker")
        return await report(args, base, web.pid, users, procs, tmp)
    finally:
        procs.stop()
        print(f"logs: {tmp}")


def shown(status: dict) -> tuple:
    """What a checklist shows: the status without its version and timestamp."""
    return (status["wizard_complete"], tuple(sorted(status["details"].items())))


def unconverged(shown_now: dict[int, tuple], user_ids) -> list[int]:
    """Users whose socket does not show their current status."""
    from onboarding.selectors import wizard_statuses_get

    current = wizard_statuses_get(user_ids=list(user_ids))
    return [
        user_id
        for user_id, status in current.items()
        if shown_now.get(user_id) != shown(status.as_message())
    ]


def write_at_rate(
    via: str, base: str, tokens: dict[int, str], rate: float, duration: float, warmup: float,
    results,
):  # fmt: skip
    """The writer (a process of its own): flip the first names of random users at `rate`/s.

    `via` "http": PATCH /api/v1/accounts/me. `via` "service": call the service function the
    endpoint calls (same transaction, outbox row and nudge after commit) without HTTP.
    `via` "lean": `lean_profile_update`. The last two load the relay and the sockets beyond
    what Django can serve over HTTP on this machine.
    The first `warmup` seconds of writes warm the processes up (connections, caches) and are
    left out of the figures: the main process is told when the measured writes begin.
    """

    def write(seconds: float) -> dict:
        if via == "http":
            return asyncio.run(_http_writes(base, tokens, rate, seconds, filled))
        return _direct_writes(via, tokens, rate, seconds, filled)

    filled: dict[int, bool] = {}  # each write flips the user's first name: a new status
    write(warmup)
    cpu_from = time.process_time()
    results.put(time.time())  # measured from here
    written_before = set(filled)
    outcome = write(duration)
    outcome["written"] = sorted(set(filled) | written_before)
    outcome["cpu_seconds"] = time.process_time() - cpu_from
    results.put(outcome)


def next_first_name(filled: dict[int, bool], user_id: int) -> str:
    filled[user_id] = not filled.get(user_id, False)
    return "Bench" if filled[user_id] else ""


async def _at_rate(rate: float, duration: float, write) -> float:
    """Start `write()` `rate` times a second (catching up when behind); the seconds taken."""
    started = time.perf_counter()
    tasks = []
    for n in range(int(rate * duration)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(write()))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def round_robin(user_ids) -> Iterator[int]:
    """Users in shuffled rounds: with 1,000 users at 400 writes/s each is written every 2.5 s,
    so no two writes of one user share a relay batch and each write gets a push of its own
    (a write undone by the next one in the same batch would get none)."""
    order = list(user_ids)
    while True:
        random.shuffle(order)
        yield from order


async def _http_writes(base, tokens, rate, duration, filled) -> dict:
    errors = 0
    next_user = round_robin(tokens)
    in_flight = asyncio.Semaphore(64)  # past this, requests wait here, not in timeouts
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def write() -> None:
            nonlocal errors
            user_id = next(next_user)
            async with in_flight:
                try:
                    response = await client.patch(
                        "/api/v1/accounts/me",
                        json={"first_name": next_first_name(filled, user_id)},
                        headers={"Authorization": f"Bearer {tokens[user_id]}"},
                    )
                except httpx.HTTPError:
                    errors += 1
                    return
            if response.status_code != 200:
                errors += 1

        seconds = await _at_rate(rate, duration, write)
    return {"errors": errors, "seconds": seconds}


def lean_profile_update(*, user_id: int, first_name: str) -> int:
    """`profile_update` with one hand-written UPDATE in place of the ORM's lock, read and
    save (~3 ms less CPU per write): the outbox row and the nudge after commit are the real
    ones. For loading the relay and the sockets at rates one Django process cannot write."""
    from django.db import connection, transaction

    from outbox.models import Actor, Topic
    from outbox.services import outbox_enqueue

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE onboarding_onboardingprofile SET first_name = %s, "
                "version = version + 1 WHERE user_id = %s "
                "RETURNING version",
                [first_name, user_id],
            )
            [version] = cursor.fetchone()
        outbox_enqueue(
            user_id=user_id,
            topic=Topic.PROFILE_UPDATED,
            version=version,
            payload={"fields": ["first_name"]},
            actor=Actor.user(user_id),
        )
    return version


def _direct_writes(via, tokens, rate, duration, filled) -> dict:
    """One write after another on one connection, on schedule (catching up when behind)."""
    from django.conf import settings

    if not settings.configured:
        setup_django(os.environ["DATABASE_URL"], {"DATABASE_POOL": "0", "CONN_MAX_AGE": "600"})
    from onboarding.services import profile_update

    write = profile_update if via == "service" else lean_profile_update
    next_user = round_robin(tokens)

    def write_next() -> None:
        user_id = next(next_user)
        write(user_id=user_id, first_name=next_first_name(filled, user_id))

    return {"errors": 0, "seconds": paced(rate, duration, write_next)}


def paced(rate: float, duration: float, write: Callable[[], None]) -> float:
    """`write()` `rate` times a second, one after another, on schedule (catching up when
    behind); the seconds taken."""
    pause = threading.Event()
    started = time.perf_counter()
    for n in range(int(rate * duration)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            pause.wait(delay)
        write()
    return time.perf_counter() - started


async def report(args, base: str, web_pid: int, users, procs: Processes, logs: Path) -> None:
    from django.db import connection

    from outbox.models import OutboxEvent

    ws_url = base.replace("http", "ws") + "/ws/wizard-status/"
    async with httpx.AsyncClient(base_url=base, timeout=5) as warm:
        for _ in range(20):
            await warm.get("/healthz")
    rss_before = rss_kib(web_pid)
    sockets = await open_sockets(ws_url, users, 1)
    rss_after = rss_kib(web_pid)
    per_socket_kib = (rss_after - rss_before) / len(sockets)

    # (user_id, version, unix time received, unix time the relay read the status)
    received: list[tuple[int, int, float, float]] = []
    shown_now = {user_id: first_shown for user_id, _, first_shown in sockets}

    async def read(user_id: int, ws) -> None:
        try:
            async for frame in ws:
                message = json.loads(frame)
                if message.get("type") == "wizard_status":
                    computed = datetime.fromisoformat(message["timestamp"]).timestamp()
                    received.append((user_id, message["version"], time.time(), computed))
                    shown_now[user_id] = shown(message)
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(uid, ws)) for uid, ws, _ in sockets]
    # The writes come from processes of their own (each with its own users), so this one
    # does nothing but read the sockets and note each frame when it arrives, as a tab would.
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    rate = args.rate / args.writers
    writers = [
        spawn.Process(
            target=write_at_rate,
            args=(args.via, base, own, rate, args.duration, args.warmup, results),
        )
        for own in (dict(users[n :: args.writers]) for n in range(args.writers))
    ]
    print(
        f"writing for {args.warmup:g} + {args.duration:g} s from {args.writers} process(es) "
        f"(web pid {web_pid})",
        flush=True,
    )
    for writer in writers:
        writer.start()
    started = [await asyncio.to_thread(results.get) for _ in writers]
    measured_from = max(started)
    cpu_before = cpu_sample(procs)
    outcomes = [await asyncio.to_thread(results.get) for _ in writers]
    for writer in writers:
        await asyncio.to_thread(writer.join)
    print(f"writes made via         {args.via}")
    cpu_after = cpu_sample(procs)
    cpu_before["writers"] = 0.0
    cpu_after["writers"] = sum(outcome["cpu_seconds"] for outcome in outcomes)
    errors = sum(outcome["errors"] for outcome in outcomes)
    write_seconds = max(outcome["seconds"] for outcome in outcomes)
    filled = sorted({user_id for outcome in outcomes for user_id in outcome["written"]})
    interval = 1.0 / args.rate
    # Let the last pushes arrive: wait until every written user's socket shows its status.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and unconverged(shown_now, filled):
        await asyncio.sleep(interval)
    behind = unconverged(shown_now, filled)
    for ws in (ws for _, ws, _ in sockets):
        await ws.close()
    for task in readers:
        task.cancel()

    connection.close()
    created = {
        (user_id, version): created_at.timestamp()
        for user_id, version, created_at in OutboxEvent.objects.values_list(
            "user_id", "version", "created_at"
        )
        if created_at.timestamp() >= measured_from
    }
    first_seen: dict[tuple[int, int], float] = {}
    computed_at: dict[tuple[int, int], float] = {}
    for user_id, version, at, computed in received:
        computed_at.setdefault((user_id, version), computed)
        key = (user_id, version)
        first_seen[key] = min(at, first_seen.get(key, at))
    latencies, relay_legs, socket_legs = [], [], []
    rows = ["user_id,version,committed,relay_read,received"]
    missed = coalesced = 0
    by_user: dict[int, list[tuple[int, float]]] = {}
    for (user_id, version), at in first_seen.items():
        by_user.setdefault(user_id, []).append((version, at, computed_at[(user_id, version)]))
    for (user_id, version), created_at in created.items():
        # A write is delivered by the first status at its version or a newer one.
        seen = by_user.get(user_id, [])
        candidates = [(at, computed) for v, at, computed in seen if v >= version]
        if not candidates:
            # No status at its version or later: fine only if a later write undid it before
            # the relay read the status (one push for a burst), and the socket shows the end.
            if user_id in behind:
                missed += 1
            else:
                coalesced += 1
            continue
        at, computed = min(candidates)
        latencies.append((at - created_at) * 1000)
        relay_legs.append((computed - created_at) * 1000)
        socket_legs.append((at - computed) * 1000)
        rows.append(f"{user_id},{version},{created_at:.6f},{computed:.6f},{at:.6f}")
    pending = OutboxEvent.objects.pending().count()
    (logs / "latencies.csv").write_text("\n".join(rows) + "\n")
    (logs / "frames.csv").write_text(
        "user_id,version,received,relay_read\n"
        + "".join(f"{u},{v},{at:.6f},{c:.6f}\n" for u, v, at, c in received)
    )

    print(f"sockets open            {len(sockets)}")
    print(
        f"writes                  {len(created)} in {write_seconds:.1f} s "
        f"({len(created) / write_seconds:.0f}/s target {args.rate}/s), http errors {errors}"
    )
    frames = sum(1 for _, _, at, _ in received if at >= measured_from)
    print(f"status frames received  {frames} ({frames / max(write_seconds, 0.001):.0f} pushes/s)")
    if latencies:
        print(
            "commit->socket ms       "
            f"p50 {statistics.median(latencies):.1f}  p95 {percentile(latencies, 0.95):.1f}  "
            f"p99 {percentile(latencies, 0.99):.1f}  max {max(latencies):.1f}"
        )
        legs = (("  commit->relay read", relay_legs), ("  relay read->socket", socket_legs))
        for name, leg in legs:
            print(
                f"{name:24s}p50 {statistics.median(leg):.1f}  p95 {percentile(leg, 0.95):.1f}  "
                f"p99 {percentile(leg, 0.99):.1f}"
            )
    print(
        f"writes never delivered  {missed}   undone before their push {coalesced}   "
        f"outbox rows still pending {pending}"
    )
    used = {name: cpu_used(cpu_before[name], cpu_after[name]) for name in cpu_after}
    busy = ", ".join(
        f"{name} {100 * seconds / write_seconds:.0f}%" for name, seconds in used.items()
    )
    print(f"CPU while writing       {busy} (of {100 * os.cpu_count()}%)")
    per_change = ", ".join(
        f"{name} {1000 * seconds / max(len(created), 1):.2f}" for name, seconds in used.items()
    )
    print(f"CPU ms per change       {per_change}")
    print_reconciler(base)
    print(
        f"web RSS                 {rss_before} KiB -> {rss_after} KiB with sockets: "
        f"{per_socket_kib:.1f} KiB per idle socket"
    )
    return {
        "writes_per_s": len(created) / write_seconds,
        "p50": statistics.median(latencies) if latencies else None,
        "p95": percentile(latencies, 0.95) if latencies else None,
        "p99": percentile(latencies, 0.99) if latencies else None,
        "max": max(latencies) if latencies else None,
        "missed": missed,
        "rss_per_socket_kib": per_socket_kib,
    }


async def run_with_floor(args) -> None:
    """The floor first, then the product, with the same sockets, rate and writers; the
    product's figures are then printed beside the floor's."""
    from tests.benchmark_floor import floor_print, floor_run

    floor = await floor_run(**load_of(args))
    floor_print(floor)
    print()
    product = await run(args)
    print()
    print(f"{'':24s}{'floor':>10s}{'product':>10s}{'ratio':>8s}")
    for key, label in (
        ("writes_per_s", "changes/s delivered"),
        ("p50", "commit->socket p50 ms"),
        ("p95", "commit->socket p95 ms"),
        ("p99", "commit->socket p99 ms"),
        ("max", "commit->socket max ms"),
        ("rss_per_socket_kib", "KiB per idle socket"),
    ):
        ours, theirs = product[key], floor[key]
        if ours is None or theirs is None:
            continue
        print(f"{label:24s}{theirs:10.1f}{ours:10.1f}{ours / theirs:7.2f}x")


def cpu_sample(procs: Processes) -> dict[str, float | dict[int, float]]:
    sample: dict[str, float | dict[int, float]] = {
        name: tree_cpu_seconds(proc.pid) for name, proc in procs.procs.items()
    }
    sample["socket client"] = cpu_seconds(os.getpid(), reaped_children=False)
    sample["postgres"] = server_cpu_seconds("postgres")
    sample["redis"] = server_cpu_seconds("redis-server")
    return sample


def print_reconciler(base: str) -> None:
    """The reconciler's rounds in every web process, from /metrics: mean and the bucket
    that holds the slowest round, for its query and for its pass on the event loop."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for part in ("query", "loop"):
        label = f'part="{part}"'
        count = total = 0.0
        buckets: list[tuple[float, float]] = []
        for line in text.splitlines():
            if label not in line or line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            if name.startswith("wizard_socket_reconcile_seconds_count"):
                count = float(value)
            elif name.startswith("wizard_socket_reconcile_seconds_sum"):
                total = float(value)
            elif name.startswith("wizard_socket_reconcile_seconds_bucket"):
                bound = name.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float(bound), float(value)))
        if not count:
            continue
        slowest = min(bound for bound, seen in buckets if seen >= count)
        print(
            f"reconciler {part:6s}       {count:.0f} rounds, mean {1000 * total / count:.2f} ms, "
            f"slowest <= {1000 * slowest:g} ms"
        )


def run_until_stopped(main_coroutine) -> None:
    """`asyncio.run`, with SIGTERM ending it like Ctrl-C, so the processes started are stopped."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    asyncio.run(main_coroutine)


def load_arguments(parser: argparse.ArgumentParser, *, web_processes: int) -> None:
    """The load both benchmarks take: sockets, rate, duration, writers, processes."""
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50, help="writes per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of writing")
    parser.add_argument(
        "--warmup", type=float, default=3, help="seconds of writing before the measured ones"
    )
    parser.add_argument(
        "--writers", type=int, default=1, help="writer processes, each with its own users"
    )
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--web-processes", type=int, default=web_processes, help="uvicorn --workers"
    )


def load_of(args: argparse.Namespace) -> dict:
    """The `load_arguments` given, as keyword arguments."""
    names = (
        "users",
        "rate",
        "duration",
        "warmup",
        "writers",
        "worker_concurrency",
        "web_processes",
    )
    return {name: getattr(args, name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser, web_processes=2)
    parser.add_argument(
        "--via",
        choices=("http", "service", "lean"),
        default="http",
        help="how writes are made: PATCH over HTTP, the service function, or a lean SQL write",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="first measure the same components with no business logic, then compare",
    )
    args = parser.parse_args()
    run_until_stopped(run_with_floor(args) if args.floor else run(args))


if __name__ == "__main__":
    main()

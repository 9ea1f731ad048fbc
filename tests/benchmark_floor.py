"""Floor benchmark: the product's components with no business logic, from commit to socket.

    uv run python -m tests.benchmark_floor --users 1000 --rate 50 --duration 20
    uv run python -m tests.benchmark_floor --users 1000 --rate 1000 --writers 2 --duration 10

What the product cannot go below on this machine, measured the way tests/benchmark.py
measures the product, so its figures can be quoted as ratios to these in the same run:

- writers (`--writers` processes of their own, each at rate/K over a disjoint slice of the
  users, in shuffled rounds) insert a row into `floor_event` of database
  `wizard_status_floor` (recreated each run) with psycopg, commit, then `.delay()` one
  Celery task per row carrying the row's `created_at`;
- a Celery worker (the Procfile's pool and flags, the product's broker settings) on Redis
  (FLOOR_REDIS_URL, default database 9, emptied first) runs it: no reads, one channels-redis
  pub/sub `group_send` to the user's group from one long-lived event loop;
- uvicorn (the Procfile's web flags) serves a bare ASGI app (tests/floor/app.py) that
  forwards each layer message to the user's socket as a JSON text frame;
- this process holds one socket per user and notes when each frame is read.

Latency is from `created_at` (clock_timestamp() inside the writing transaction, a fraction of
a millisecond before COMMIT, as the product's outbox row) to the read, both this machine's
wall clock. CPU is per process over the measured writes; PostgreSQL and Redis are their whole
servers (every process named `postgres` / `redis-server`), other users' work included.

Runs on one machine take turns (an advisory lock on the admin database), as they share the
database and the Redis database; each run's Celery queue and layer prefix are its own.

`floor_run` is a coroutine: `figures = await floor_run(users=..., rate=..., ...)`.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis
import websockets

from tests.benchmark import (
    Processes,
    cpu_seconds,
    cpu_used,
    free_port,
    http_ok,
    load_arguments,
    load_of,
    log_contains,
    paced,
    percentile,
    poll,
    recreate_database,
    round_robin,
    rss_kib,
    run_until_stopped,
    server_cpu_seconds,
    tree_cpu_seconds,
)

FLOOR_DB = "wizard_status_floor"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
RUN_LOCK = 0x666C6F6F72  # "floor": the advisory lock one run holds on the admin database
INSERT = "INSERT INTO floor_event (user_id, created_at) VALUES (%s, clock_timestamp()) " + (
    "RETURNING id, created_at"
)


async def floor_run(
    *,
    users: int,
    rate: float,
    duration: float,
    warmup: float,
    writers: int = 1,
    web_processes: int = 1,
    worker_concurrency: int = 2,
) -> dict:
    """Start the floor stack, write `rate`/s for `warmup` + `duration` s, stop everything.

    Returns writes_per_s, frames, missed, p50/p95/p99/max (ms, commit->socket), cpu
    (name -> % of one core), rss_per_socket_kib, logs (the work directory) and a few more.
    """
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    # Two runs at once would drop each other's database and flush each other's broker:
    # runs wait for each other, and the lock goes with this connection, however it ends.
    with psycopg.connect(admin_url, autocommit=True) as lock:

        def locked() -> bool:
            return lock.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK,)).fetchone()[0]

        if not locked():
            print("floor: waiting for another floor run to end", file=sys.stderr, flush=True)
            poll(locked, timeout=1800, what="another floor run to end", interval=1)
        return await _run_alone(
            admin_url=admin_url,
            users=users,
            rate=rate,
            duration=duration,
            warmup=warmup,
            writers=writers,
            web_processes=web_processes,
            worker_concurrency=worker_concurrency,
        )


async def _run_alone(
    *, admin_url, users, rate, duration, warmup, writers, web_processes, worker_concurrency
) -> dict:
    database_url = recreate_database(admin_url, FLOOR_DB)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE floor_event (id bigserial PRIMARY KEY, user_id integer NOT NULL, "
            "created_at timestamptz NOT NULL)"
        )
    redis_url = os.environ.get("FLOOR_REDIS_URL", DEFAULT_REDIS_URL)
    redis.Redis.from_url(redis_url).flushdb()  # no task left over from another run
    logs = Path(tempfile.mkdtemp(prefix="wizard-floor-"))
    # A queue of its own too: a worker left over from a killed run (its own session, so
    # it outlives the run) would otherwise take tasks and push them to a prefix nobody reads.
    floor_env = {
        "FLOOR_REDIS_URL": redis_url,
        "FLOOR_PREFIX": f"floor{os.getpid()}",
        "FLOOR_QUEUE": f"floor{os.getpid()}",
    }
    env = {**os.environ, **floor_env}
    port = free_port()
    procs = Processes(env, logs)
    # The Procfile's web and worker flags, less what only the product's app has.
    procs.start(
        "web",
        [
            sys.executable, "-m", "uvicorn", "tests.floor.app:application",
            "--host", "127.0.0.1", "--port", str(port),
            "--ws-max-size", "4096", "--ws-per-message-deflate", "false",
            "--lifespan", "off", "--no-access-log", "--no-proxy-headers",
            "--workers", str(web_processes), "--log-level", "warning",
        ],
    )  # fmt: skip
    procs.start(
        "worker",
        [
            sys.executable, "-m", "celery", "-A", "tests.floor.worker", "worker",
            "--pool", "threads", "--concurrency", str(worker_concurrency),
            "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
        ],
    )  # fmt: skip
    writer_procs: list[multiprocessing.Process] = []
    try:
        base = f"http://127.0.0.1:{port}"
        poll(lambda: http_ok(base), timeout=60, what="the floor web process")
        from tests.floor.worker import READY

        poll(lambda: log_contains(logs / "worker.log", READY), timeout=60, what="the worker")
        figures = await _measure(
            base=base,
            procs=procs,
            writer_procs=writer_procs,
            database_url=database_url,
            floor_env=floor_env,
            user_ids=list(range(1, users + 1)),
            rate=rate,
            duration=duration,
            warmup=warmup,
            writers=writers,
        )
        (logs / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        return {**figures, "logs": str(logs)}
    finally:
        for writer in writer_procs:
            if writer.is_alive():
                writer.terminate()
            writer.join(timeout=10)
        procs.stop()


async def _open_sockets(ws_url: str, user_ids: list[int]) -> list[tuple[int, object]]:
    sockets = []

    async def open_one(user_id: int) -> None:
        ws = await websockets.connect(
            f"{ws_url}?user={user_id}", max_size=2**16, compression=None, open_timeout=30
        )
        sockets.append((user_id, ws))
        await ws.recv()  # the first frame: the socket is in its group

    for start in range(0, len(user_ids), 50):
        await asyncio.gather(*(open_one(user_id) for user_id in user_ids[start : start + 50]))
    return sockets


def _cpu_sample(procs: Processes) -> dict[str, object]:
    return {
        "web": tree_cpu_seconds(procs.procs["web"].pid),
        "worker": tree_cpu_seconds(procs.procs["worker"].pid),
        "socket client": cpu_seconds(os.getpid(), reaped_children=False),
        "postgres (server)": server_cpu_seconds("postgres"),
        "redis (server)": server_cpu_seconds("redis-server"),
    }


def _cpu_percent(before, after, seconds: float) -> float:
    return 100 * cpu_used(before, after) / seconds


async def _measure(
    *, base, procs, writer_procs, database_url, floor_env, user_ids, rate, duration, warmup,
    writers,
) -> dict:  # fmt: skip
    web_pid = procs.procs["web"].pid
    for _ in range(20):  # as tests/benchmark.py warms the web process before measuring
        http_ok(base)
    rss_before = rss_kib(web_pid)
    sockets = await _open_sockets(base.replace("http", "ws") + "/", user_ids)
    rss_after = rss_kib(web_pid)

    frames: list[tuple[int, float]] = []  # (event id, unix time read), every push frame
    misrouted = 0
    # Once the writers are done: the events committed but not read yet, and when none is left.
    unread: set[int] | None = None
    all_read = asyncio.Event()

    async def read(user_id: int, ws) -> None:
        nonlocal misrouted
        try:
            async for frame in ws:
                message = json.loads(frame)
                if message.get("type") == "floor.push":
                    frames.append((message["event_id"], time.time()))
                    misrouted += message["user_id"] != user_id
                    if unread is not None:
                        unread.discard(message["event_id"])
                        if not unread:
                            all_read.set()
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(user_id, ws)) for user_id, ws in sockets]
    try:
        # The writes come from processes of their own, so this one only reads sockets.
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        barrier = spawn.Barrier(writers)
        for index in range(writers):
            writer = spawn.Process(
                target=_write_at_rate,
                args=(database_url, floor_env, user_ids[index::writers], rate / writers,
                      duration, warmup, barrier, results),
                name=f"floor-writer-{index}",
                daemon=True,
            )  # fmt: skip
            writer.start()
            writer_procs.append(writer)
        cpu_before = None
        outcomes = []
        while len(outcomes) < writers:
            kind, value = await asyncio.to_thread(_next_result, results, writer_procs)
            if kind == "measured" and cpu_before is None:
                # The writers leave a barrier together: the first one to report starts it.
                cpu_before, started = _cpu_sample(procs), time.monotonic()
            elif kind == "done":
                outcomes.append(value)
        cpu_after, seconds = _cpu_sample(procs), time.monotonic() - started
        load_average = os.getloadavg()
        for writer in writer_procs:
            await asyncio.to_thread(writer.join)

        committed = {
            event_id: (user_id, created)
            for outcome in outcomes
            for event_id, user_id, created in outcome["events"]
        }
        unread = set(committed) - {event_id for event_id, _ in frames}
        if not unread:
            all_read.set()
        with contextlib.suppress(TimeoutError):  # the last pushes, or give up on them
            await asyncio.wait_for(all_read.wait(), timeout=10)
    finally:
        await asyncio.gather(*(ws.close() for _, ws in sockets), return_exceptions=True)
        for task in readers:
            task.cancel()

    first_read: dict[int, float] = {}
    for event_id, at in frames:
        first_read.setdefault(event_id, at)
    latencies = []
    rows = ["event_id,user_id,committed,received"]
    for event_id, (user_id, created) in committed.items():
        if event_id in first_read:
            latencies.append((first_read[event_id] - created) * 1000)
            rows.append(f"{event_id},{user_id},{created:.6f},{first_read[event_id]:.6f}")
    logs = procs.logs
    (logs / "latencies.csv").write_text("\n".join(rows) + "\n")

    write_seconds = max(outcome["seconds"] for outcome in outcomes)
    cpu = {name: _cpu_percent(cpu_before[name], cpu_after[name], seconds) for name in cpu_after}
    for index, outcome in enumerate(outcomes):
        cpu[f"writer {index}" if writers > 1 else "writer"] = (
            100 * outcome["cpu_seconds"] / outcome["seconds"]
        )
    delivered = sum(1 for event_id, _ in frames if event_id in committed)

    def ms(value: float) -> float:
        return round(value, 2) if latencies else float("nan")

    return {
        "users": len(user_ids),
        "sockets": len(sockets),
        "rate": rate,
        "writers": writers,
        "writes": len(committed),
        "write_seconds": round(write_seconds, 3),
        "writes_per_s": round(len(committed) / write_seconds, 1),
        "frames": delivered,
        "frames_per_s": round(delivered / write_seconds, 1),
        "missed": len(committed) - len(latencies),
        "misrouted": misrouted,
        "p50": ms(statistics.median(latencies) if latencies else 0),
        "p95": ms(percentile(latencies, 0.95) if latencies else 0),
        "p99": ms(percentile(latencies, 0.99) if latencies else 0),
        "max": ms(max(latencies, default=0)),
        "cpu": {name: round(value, 1) for name, value in cpu.items()},
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_socket_kib": round((rss_after - rss_before) / max(len(sockets), 1), 1),
        "load_average": [round(value, 2) for value in load_average],
    }


def _next_result(results, writer_procs) -> tuple[str, object]:
    """The next writer report; raises if a writer died instead of reporting."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            failed = [w.name for w in writer_procs if w.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"writer process failed: {', '.join(failed)}") from None


def _write_at_rate(
    database_url, floor_env, user_ids, rate, duration, warmup, barrier, results
) -> None:
    """A writer (a process of its own): insert, commit, `.delay()`, at `rate`/s.

    Reports ("measured", unix time) when the measured writes begin, then ("done", {events:
    [(event id, user id, created_at as unix time)], seconds, cpu_seconds})."""
    os.environ.update(floor_env)  # read by the Celery app as it is imported
    from tests.floor.worker import push

    next_user = round_robin(user_ids)
    events: list[tuple[int, int, float]] = []
    with psycopg.connect(database_url) as conn:

        def write() -> None:
            user_id = next(next_user)
            event_id, created_at = conn.execute(INSERT, (user_id,)).fetchone()
            conn.commit()
            created = created_at.timestamp()
            push.delay(event_id, user_id, created)  # after the commit, as on_commit does
            events.append((event_id, user_id, created))

        barrier.wait(timeout=60)
        paced(rate, warmup, write)
        barrier.wait(timeout=60)
        events.clear()
        cpu_from = time.process_time()
        results.put(("measured", time.time()))
        seconds = paced(rate, duration, write)
        cpu_seconds_used = time.process_time() - cpu_from
    results.put(("done", {"events": events, "seconds": seconds, "cpu_seconds": cpu_seconds_used}))


def floor_print(figures: dict) -> None:
    """The figures as tests/benchmark.py prints the product's."""
    print(f"sockets open            {figures['sockets']}")
    print(
        f"writes                  {figures['writes']} in {figures['write_seconds']:.1f} s "
        f"({figures['writes_per_s']:.0f}/s target {figures['rate']:g}/s, "
        f"{figures['writers']} writer process(es))"
    )
    print(f"push frames received    {figures['frames']} ({figures['frames_per_s']:.0f}/s)")
    print(
        "commit->socket ms       "
        f"p50 {figures['p50']:.1f}  p95 {figures['p95']:.1f}  "
        f"p99 {figures['p99']:.1f}  max {figures['max']:.1f}"
    )
    print(
        f"writes never delivered  {figures['missed']}   "
        f"frames on another user's socket {figures['misrouted']}"
    )
    busy = ", ".join(f"{name} {value:.0f}%" for name, value in figures["cpu"].items())
    print(f"CPU while writing       {busy} (of 200% on two cores)")
    print(
        f"web RSS                 {figures['rss_before_kib']} KiB -> "
        f"{figures['rss_after_kib']} KiB with sockets: "
        f"{figures['rss_per_socket_kib']:.1f} KiB per idle socket"
    )
    print("load average            " + " ".join(f"{v:.2f}" for v in figures["load_average"]))
    print(f"logs: {figures['logs']}")


async def _main(args) -> None:
    print(
        f"floor: {args.users} sockets, writing {args.rate:g}/s for {args.warmup:g} + "
        f"{args.duration:g} s (load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    figures = await floor_run(**load_of(args))
    floor_print(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser, web_processes=1)
    run_until_stopped(_main(parser.parse_args()))


if __name__ == "__main__":
    main()

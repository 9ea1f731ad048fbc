"""A small process manager for end-to-end runs: uvicorn web processes, a Celery worker, beat.

Each process runs its Procfile entry, read from the Procfile so the two cannot drift apart (the
program through `sys.executable -m ...`, so this virtualenv is used). Each has its own process
group and its output in a log file of a work directory. Processes can be SIGKILLed and
restarted one at a time; `stop_all` ends the rest with SIGTERM, then SIGKILL after a deadline.

Nothing here needs pytest: tests, the benchmark and the fault suite all drive it the same way.

    harness = Harness.from_django_settings(workdir=Path(...))
    webs, worker, beat = harness.start_stack(web=2)
    harness.kill(worker)      # SIGKILL: a crash
    harness.restart(worker)   # same command line and log file; waits until ready
    harness.stop_all()        # SIGTERM, then SIGKILL after a deadline
"""

import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import redis

PROJECT_ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05

_WORKER_READY = re.compile(r"@\S+ ready\.")
_BEAT_READY = re.compile(r"beat: Starting\.\.\.")
_PROCFILE_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


class HarnessError(RuntimeError):
    """A process did not start, did not become ready, or died while being waited on."""


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    interval: float = POLL_INTERVAL_SECONDS,
    describe: str = "condition",
    abort: threading.Event | None = None,
) -> None:
    """Poll `predicate` until it is true; TimeoutError after `timeout` seconds.

    `abort` lets another thread (a fault injector, a benchmark's stop signal) end the wait
    early; the pause between polls is a wait on that event.
    """
    abort = abort or threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{describe} not reached within {timeout:g} s")
        if abort.wait(min(interval, remaining)):
            raise TimeoutError(f"wait for {describe} aborted")


async def async_wait_until(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float,
    *,
    interval: float = POLL_INTERVAL_SECONDS,
    describe: str = "condition",
) -> None:
    """`wait_until` for coroutines: poll an async predicate until true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{describe} not reached within {timeout:g} s")
        await asyncio.sleep(min(interval, remaining))


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(database: Mapping) -> str:
    """A DATABASE_URL for a Django DATABASES entry (after pytest-django: the test database)."""
    engine = database["ENGINE"]
    if engine not in ("django.db.backends.postgresql", "config.postgresql"):
        raise HarnessError(
            f"End-to-end runs need a database other processes can open; got {engine}. "
            "Run them through scripts/test (PostgreSQL)."
        )
    credentials = quote(database.get("USER") or "", safe="")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"], safe="")
    if credentials:
        credentials += "@"
    host = database.get("HOST") or "127.0.0.1"
    if host.startswith("/"):
        raise HarnessError("A Unix-socket database host cannot go into DATABASE_URL; use TCP.")
    port = database.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{quote(database['NAME'], safe='')}"


@dataclass
class ManagedProcess:
    """One supervised process. A restart keeps its name, command line, port and log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready: Callable[["ManagedProcess"], bool]
    port: int | None = None
    popen: subprocess.Popen | None = None
    log_offset: int = 0  # where the current incarnation's output begins in the log
    starts: int = 0
    started_at: float = 0.0
    ready_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def url(self) -> str:
        if self.port is None:
            raise HarnessError(f"{self.name} does not listen on a port")
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://", 1) + path

    def spawn(self) -> None:
        if self.alive:
            raise HarnessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.starts += 1
            log.write(f"\n===== harness: start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: signals reach pool children too
            )
        self.started_at = time.monotonic()
        self.ready_at = 0.0

    def output(self, *, current_only: bool = True) -> str:
        """What the process wrote (this incarnation only, unless `current_only` is False)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            if current_only:
                log.seek(self.log_offset)
            return log.read().decode("utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output(current_only=False).splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll the readiness probe; fail at once (with the log) if the process exits."""
        deadline = time.monotonic() + timeout
        while not self.ready(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(
                    f"{self.name} not ready within {timeout:g} s; log tail:\n{self.tail()}"
                )
            try:
                # Waiting on the process is the pause between probes, and notices a crash.
                code = self.popen.wait(timeout=min(POLL_INTERVAL_SECONDS * 2, remaining))
            except subprocess.TimeoutExpired:
                continue
            raise HarnessError(f"{self.name} exited with {code} while starting:\n{self.tail()}")
        self.ready_at = time.monotonic()

    def signal_group(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the group is already gone
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash: no cleanup runs) and reap it."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)

    def terminate(self) -> None:
        """Ask for a graceful shutdown: SIGTERM to the main process, as a supervisor would."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)

    def finish(self, deadline: float) -> int | None:
        """After `terminate`: wait until `deadline` (monotonic), then SIGKILL the group."""
        if self.popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(deadline - time.monotonic(), 0.01))
        self.kill()  # also ends pool children a dying parent left behind
        return self.popen.returncode

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL if still running after `timeout` seconds."""
        self.terminate()
        return self.finish(time.monotonic() + timeout)


@dataclass
class PrivateRedis:
    """A redis-server of a test's own on a loopback port: no persistence, its log in
    `workdir`; `--requirepass` when it has a password. A context manager: started, stopped."""

    port: int
    workdir: Path
    password: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.alive:
            raise HarnessError("the private Redis is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        password = ("--requirepass", self.password) if self.password else ()
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *password),
                    *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                    *("--dir", str(self.workdir)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.up, READY_TIMEOUT_SECONDS, describe="private Redis")

    def up(self) -> bool:
        if not self.alive:
            if self.process is not None:
                raise HarnessError(f"redis-server exited {self.process.returncode}")
            return False
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: every connection drops, every key and subscription is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> "PrivateRedis":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def procfile_command(
    kind: str, *, variables: Mapping[str, str], procfile: Path = PROJECT_ROOT / "Procfile"
) -> tuple[dict[str, str], list[str]]:
    """The Procfile's `kind` entry as (its `env K=V` assignments, argv).

    `${VAR:-default}` is expanded from `variables`, else its default. The program (uvicorn,
    celery) runs as `sys.executable -m program`, so the interpreter of this virtualenv is used.
    """
    for line in procfile.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() == kind:
            break
    else:
        raise HarnessError(f"{procfile} has no {kind!r} entry")

    def expand(match: re.Match) -> str:
        variable, default = match.group(1) or match.group(3), match.group(2)
        if variable in variables:
            return variables[variable]
        if default is None:
            raise HarnessError(f"Procfile {kind}: ${variable} needs a value")
        return default

    words = shlex.split(_PROCFILE_VARIABLE.sub(expand, command))
    assignments: dict[str, str] = {}
    if words[0] == "env":
        words.pop(0)
        while words and re.match(r"^\w+=", words[0]):
            key, _, value = words.pop(0).partition("=")
            assignments[key] = value
    program, *arguments = words
    if program not in ("uvicorn", "celery"):
        raise HarnessError(f"Procfile {kind}: unexpected program {program!r}")
    return assignments, [sys.executable, "-m", program, *arguments]


def with_options(argv: list[str], options: Mapping[str, str]) -> list[str]:
    """`argv` with each `--option value` replaced, or appended when absent."""
    argv = list(argv)
    for option, value in options.items():
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


def _web_ready(process: ManagedProcess) -> bool:
    try:
        return httpx.get(process.url + "/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _flower_ready(process: ManagedProcess) -> bool:
    try:  # the one page flower answers without credentials
        return httpx.get(process.url + "/healthcheck", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _log_ready(pattern: re.Pattern) -> Callable[[ManagedProcess], bool]:
    return lambda process: pattern.search(process.output()) is not None


@dataclass
class Harness:
    """Web processes, workers and beat for one test session, sharing one environment."""

    database_url: str
    redis_url: str
    workdir: Path
    extra_env: Mapping[str, str | None] = field(default_factory=dict)
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: list[ManagedProcess] = field(default_factory=list)

    @classmethod
    def from_django_settings(
        cls, *, workdir: Path, extra_env: Mapping[str, str | None] | None = None
    ) -> "Harness":
        """Point the processes at the database and Redis the current Django settings use."""
        from django.conf import settings

        return cls(
            database_url=database_url(settings.DATABASES["default"]),
            redis_url=settings.REDIS_URL,
            workdir=workdir,
            extra_env=dict(extra_env or {}),
        )

    @property
    def channel_layer_prefix(self) -> str:
        return f"e2e-{self.session_id}"

    @property
    def web(self) -> list[ManagedProcess]:
        return self.of_kind("web")

    def of_kind(self, kind: str) -> list[ManagedProcess]:
        return [process for process in self.processes if process.name.rstrip("0123456789") == kind]

    def environment(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        prometheus_dir = self.workdir / "prometheus"
        prometheus_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "PROMETHEUS_MULTIPROC_DIR": str(prometheus_dir),
                "CHANNEL_LAYER_PREFIX": self.channel_layer_prefix,
                # Relaying inline in the web process would make a dead worker invisible.
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        env.update(overrides or {})
        # None unsets: a process started as a PaaS would start it, without that variable.
        return {name: value for name, value in env.items() if value is not None}

    def _register(
        self,
        kind: str,
        *,
        variables: Mapping[str, str],
        options: Mapping[str, str],
        ready: Callable[[ManagedProcess], bool],
        env: Mapping[str, str] | None,
        port: int | None = None,
    ) -> ManagedProcess:
        name = f"{kind}{len(self.of_kind(kind))}"
        assignments, argv = procfile_command(kind, variables=variables)
        process = ManagedProcess(
            name=name,
            argv=with_options(argv, options),
            env=self.environment({**assignments, **(env or {})}),
            log_path=self.workdir / f"{name}.log",
            ready=ready,
            port=port,
        )
        self.processes.append(process)
        return process

    def add_web(
        self, *, env: Mapping[str, str | None] | None = None, workers: int = 1
    ) -> ManagedProcess:
        """Register (not start) a web process: the Procfile's `web` on a free port.

        One uvicorn worker unless asked: a test that needs several server processes starts
        several web processes, which it can kill one by one, and each start costs less.
        """
        port = free_port()
        return self._register(
            "web",
            variables={"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
            options={},
            ready=_web_ready,
            env=env,
            port=port,
        )

    def add_worker(
        self, *, env: Mapping[str, str] | None = None, concurrency: int = 2
    ) -> ManagedProcess:
        """Register a Celery worker: the Procfile's `worker`, with a node name of its own."""
        index = len(self.of_kind("worker"))
        return self._register(
            "worker",
            variables={"WORKER_CONCURRENCY": str(concurrency)},
            # No clash with another worker on this machine, and log lines to tell them apart.
            options={"--hostname": f"{self.channel_layer_prefix}-worker{index}@%h"},
            ready=_log_ready(_WORKER_READY),
            env=env,
        )

    def add_beat(self, *, env: Mapping[str, str] | None = None) -> ManagedProcess:
        """Register beat: the Procfile's `beat`, its schedule file in the work directory."""
        index = len(self.of_kind("beat"))
        return self._register(
            "beat",
            variables={},
            options={"--schedule": str(self.workdir / f"beat{index}-schedule")},
            ready=_log_ready(_BEAT_READY),
            env=env,
        )

    def add_flower(self, *, env: Mapping[str, str | None] | None = None) -> ManagedProcess:
        """Register flower: the Procfile's `flower` on a free port (ready: its /healthcheck)."""
        port = free_port()
        return self._register(
            "flower",
            variables={"FLOWER_PORT": str(port)},
            options={},
            ready=_flower_ready,
            env=env,
            port=port,
        )

    def launch(
        self, processes: list[ManagedProcess], *, timeout: float = READY_TIMEOUT_SECONDS
    ) -> list[ManagedProcess]:
        """Spawn every process first, then wait for each: they start up in parallel."""
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready(timeout)
        return processes

    def start_stack(
        self, *, web: int = 1, env: Mapping[str, str] | None = None
    ) -> tuple[list[ManagedProcess], ManagedProcess, ManagedProcess]:
        """`web` web processes, one worker and beat, all started in parallel."""
        webs = [self.add_web(env=env) for _ in range(web)]
        worker = self.add_worker(env=env)
        beat = self.add_beat(env=env)
        try:
            self.launch([*webs, worker, beat])
        except BaseException:
            self.stop_all()
            raise
        return webs, worker, beat

    def kill(self, process: ManagedProcess) -> None:
        process.kill()

    def restart(self, process: ManagedProcess, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start a stopped or killed process again (same port, same log) and wait for it."""
        if process.alive:
            process.stop()
        process.spawn()
        process.wait_ready(timeout)

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM everything at once, then SIGKILL whatever outlives the deadline."""
        running = [process for process in self.processes if process.alive]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            process.finish(deadline)

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for process in self.processes:
            if process.popen is None:
                state = "never started"
            elif process.alive:
                state = "running"
            else:
                state = f"exited {process.popen.returncode}"
            parts.append(
                f"----- {process.name} (pid {process.pid}, {state}, {process.log_path}) -----\n"
                f"{process.tail(lines)}"
            )
        return "\n".join(parts)

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

"""A private PostgreSQL cluster and Redis server for one fault-suite run.

Both listen on free loopback ports and live in a temporary directory, so the suite can kill
and restart them at will without touching the machine's own PostgreSQL (5432) or Redis
(6379). PostgreSQL refuses to run as root, so when we are root `initdb`, `pg_ctl` and the
server run as the `postgres` system user (`runuser`), with the data directory owned by it.

    cluster = PrivateCluster.create()       # initdb, start both, CREATE DATABASE, migrate
    cluster.restart_postgres()              # pg_ctl stop -m fast, then start
    cluster.restart_redis()                 # SIGKILL, then start
    cluster.kill_redis(); ...; cluster.start_redis()   # Redis unreachable for a while
    cluster.destroy()                       # stop both, delete the directory

Its Redis is `tests.e2e.harness.PrivateRedis`, which end-to-end tests also use alone.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.e2e.harness import PROJECT_ROOT, PrivateRedis, free_port, wait_until

PG_USER = "postgres"  # the system user the server runs as, and the database superuser
DATABASE_NAME = "wizard_faults"
SYSTEM_PORTS = frozenset({5432, 6379})  # the machine's own servers: never ours
START_TIMEOUT_SECONDS = 30.0
_PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin")


class ClusterError(RuntimeError):
    """A private server did not start, stop, or accept the database setup."""


def _pg_binary(name: str) -> str:
    for directory in _PG_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ClusterError(f"{name} not found in {_PG_BIN_DIRS} or on PATH")
    return found


def _private_port() -> int:
    while True:
        port = free_port()
        if port not in SYSTEM_PORTS:
            return port


@dataclass
class PrivateCluster:
    workdir: Path
    pg_port: int
    redis: PrivateRedis
    keep: bool = False
    _owns_workdir: bool = field(default=True, repr=False)

    # Setup and teardown

    @classmethod
    def create(cls, *, workdir: Path | None = None, keep: bool = False) -> "PrivateCluster":
        """initdb a fresh cluster, start it and Redis, create the database and migrate it."""
        owns = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="fault-suite-"))
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)  # the postgres user must reach its folders inside
        cluster = cls(
            workdir=workdir,
            pg_port=_private_port(),
            redis=PrivateRedis(port=_private_port(), workdir=workdir),
            keep=keep,
            _owns_workdir=owns,
        )
        try:
            cluster.init_postgres()
            cluster.start_postgres()
            cluster.start_redis()
            cluster.create_database()
            cluster.migrate()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def pgdata(self) -> Path:
        return self.workdir / "pgdata"

    @property
    def pg_runtime(self) -> Path:
        """Unix socket and server log: a folder the postgres user can write."""
        return self.workdir / "pgrun"

    @property
    def database_url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.pg_port}/{DATABASE_NAME}"

    @property
    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user={PG_USER} dbname={DATABASE_NAME}"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", PG_USER, "--", *argv]
        return argv

    def _run_as_postgres(self, argv: list[str], *, timeout: float = 60) -> str:
        result = subprocess.run(
            self._as_postgres(argv),
            cwd="/",  # the postgres user may not be allowed into our working directory
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
                f"\n{self.postgres_log_tail()}"
            )
        return result.stdout

    def init_postgres(self) -> None:
        for directory in (self.pgdata, self.pg_runtime):
            directory.mkdir(mode=0o700, exist_ok=True)
            if os.geteuid() == 0:
                account = pwd.getpwnam(PG_USER)
                os.chown(directory, account.pw_uid, account.pw_gid)
        self._run_as_postgres(
            [
                _pg_binary("initdb"),
                "--pgdata",
                str(self.pgdata),
                "--username",
                PG_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.pg_port),
            "unix_socket_directories": f"'{self.pg_runtime}'",
            "max_connections": "300",
            # A throwaway cluster: a clean (fast) shutdown still writes everything out.
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# fault suite\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _pg_ctl(self, *arguments: str) -> None:
        self._run_as_postgres(
            [_pg_binary("pg_ctl"), "--pgdata", str(self.pgdata), *arguments],
            timeout=START_TIMEOUT_SECONDS + 10,
        )

    def start_postgres(self) -> None:
        self._pg_ctl(
            "start",
            "--wait",
            "--timeout",
            str(int(START_TIMEOUT_SECONDS)),
            "--log",
            str(self.pg_runtime / "postgres.log"),
        )
        wait_until(self.postgres_up, START_TIMEOUT_SECONDS, describe="private PostgreSQL")

    def stop_postgres(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "--wait", "--mode", mode)

    def restart_postgres(self) -> None:
        """A fast restart: every session is cut, committed data survives."""
        self.stop_postgres("fast")
        self.start_postgres()

    def postgres_up(self) -> bool:
        try:
            admin = self.conninfo.replace(f"dbname={DATABASE_NAME}", "dbname=postgres")
            with psycopg.connect(admin, connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def postgres_log_tail(self, lines: int = 20) -> str:
        log = self.pg_runtime / "postgres.log"
        with contextlib.suppress(OSError):
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def create_database(self) -> None:
        admin = self.conninfo.replace(f"dbname={DATABASE_NAME}", "dbname=postgres")
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE_NAME}")

    def migrate(self) -> None:
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"migrate failed:\n{result.stdout}{result.stderr}")

    # Redis

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def start_redis(self) -> None:
        self.redis.start()

    def kill_redis(self) -> None:
        self.redis.kill()

    def restart_redis(self) -> None:
        self.redis.kill()
        self.redis.start()

    # Teardown

    def destroy(self) -> None:
        """Stop both servers (never the machine's own) and delete the directory."""
        self.kill_redis()
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self.stop_postgres("immediate")
        if self._owns_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


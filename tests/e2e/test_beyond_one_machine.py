"""Beyond one machine: the channel layer on two Redis servers, PgBouncer in front of PostgreSQL.

Two web processes and a worker run with CHANNEL_LAYER_URLS naming the suite's Redis and a
second one of this module's own, and with DATABASE_URL pointing at a PgBouncer of its own in
transaction pooling mode, with fewer server connections than the processes have clients. Users
spread over both web processes each change their profile through the REST API; every socket
must get its push through the relay and the shard its group hashes to (the reconciler is off),
every process must have reached the database through PgBouncer only, and no server connection
may carry a setting a transaction left behind.
"""

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from channels_redis.pubsub import RedisPubSubLoopLayer
from django.conf import settings

from outbox.models import OutboxEvent
from realtime.groups import user_group
from tests.e2e.clients import SOCKET_PATH, ApiUser, LiveSocket, in_django
from tests.e2e.harness import (
    READY_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    ManagedProcess,
    PrivateRedis,
    async_wait_until,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.e2e

USERS = 40
AT_ONCE = 8  # users set up in parallel: enough to overlap, gentle on a shared machine
PUSH_SECONDS = 10.0
FIRST_MESSAGE_SECONDS = 10.0
# Server connections PgBouncer may open to the test database: fewer than the processes'
# clients, so transactions of different processes share them.
SERVER_CONNECTIONS = 4
PGBOUNCER = os.environ.get("PGBOUNCER") or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Any of these in a log line fails the test: a relay retry (WARNING) is a failure here too.
LOG_ERRORS = ("WARNING", "ERROR", "CRITICAL", "Traceback", "prepared statement")
PGBOUNCER_LOG_ERRORS = (" WARNING ", " ERROR ", " FATAL ")


@dataclass
class Bouncer:
    port: int
    database: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def admin(self, command: str) -> list[dict]:
        """A SHOW command of PgBouncer's admin console, rows by column name."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer", autocommit=True
        ) as console:
            cursor = console.execute(command)
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class Stack:
    web: list[ManagedProcess]
    worker: ManagedProcess
    bouncer: Bouncer
    layer_urls: list[str]
    prefix: str


@pytest.fixture(scope="module")
def second_redis(tmp_path_factory) -> Iterator[str]:
    """A redis-server of this module's own: no persistence, stopped at the end."""
    if shutil.which("redis-server") is None:
        # The test command installs and starts Redis (scripts/services.sh): its absence is a
        # broken test machine, not a pass.
        pytest.fail("redis-server is not installed: the test starts a second Redis")
    with PrivateRedis(port=free_port(), workdir=tmp_path_factory.mktemp("second-redis")) as server:
        yield server.url


def _pgbouncer_user() -> list[str]:
    """PgBouncer refuses to run as root: then it switches to the database's system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no postgres user for PgBouncer to run as")
    return ["-u", "postgres"]


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of the test database, on a free port."""
    if not os.access(PGBOUNCER, os.X_OK):
        pytest.fail(
            f"PgBouncer is not installed at {PGBOUNCER}: scripts/test installs it when run as "
            "root, or apt-get install pgbouncer (or set PGBOUNCER to a PgBouncer binary)"
        )
    run_as = _pgbouncer_user()
    database = settings.DATABASES["default"]
    bouncer = Bouncer(port=free_port(), database=database["NAME"], log_path=Path())
    # Not under pytest's temporary folder: that is private to this user, and PgBouncer may
    # run as another.
    workdir = Path(tempfile.mkdtemp(prefix="e2e-pgbouncer-"))
    workdir.chmod(0o755)
    bouncer.log_path = workdir / "pgbouncer.log"
    (workdir / "userlist.txt").write_text('"postgres" ""\n')
    server = (
        f"host={database.get('HOST') or '127.0.0.1'} port={database.get('PORT') or 5432} "
        f"dbname={database['NAME']} user={database.get('USER') or 'postgres'}"
    )
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": bouncer.port,
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": workdir / "userlist.txt",
        "admin_users": "postgres",
        "pool_mode": "transaction",
        "default_pool_size": SERVER_CONNECTIONS,
        "max_client_conn": 200,
    }
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{bouncer.database} = {server}\n\n[pgbouncer]\n"
        + "".join(f"{name} = {value}\n" for name, value in options.items())
    )
    for path in workdir.iterdir():
        path.chmod(0o644)
    with bouncer.log_path.open("ab") as log:
        process = subprocess.Popen(
            [PGBOUNCER, *run_as, str(workdir / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"pgbouncer exited {process.returncode}: {bouncer.log_path.read_text()}"
            )
        try:
            return bool(bouncer.admin("SHOW VERSION"))
        except psycopg.OperationalError:
            return False

    try:
        wait_until(up, READY_TIMEOUT_SECONDS, describe="PgBouncer")
        yield bouncer
    finally:
        # SIGINT: safe shutdown, after the clients' transactions end.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(second_redis, pgbouncer, harness_factory) -> Stack:
    # harness_factory last: its processes stop before PgBouncer and the second Redis do.
    layer_urls = [settings.REDIS_URL, second_redis]
    harness = harness_factory(
        DATABASE_URL=pgbouncer.url,
        DATABASE_PGBOUNCER="1",
        CHANNEL_LAYER_URLS=",".join(layer_urls),
        # Every status after a socket's first message then came through the relay and a shard.
        WEBSOCKET_RECONCILE_INTERVAL="3600",
    )
    # The production default: web processes keep a pool of connections (here, to PgBouncer).
    web = [harness.add_web(env={"DATABASE_POOL": "1", "PGAPPNAME": f"e2e-web{n}"}) for n in (0, 1)]
    worker = harness.add_worker(env={"PGAPPNAME": "e2e-worker0"})
    harness.launch([*web, worker])
    return Stack(web, worker, pgbouncer, layer_urls, harness.channel_layer_prefix)


def expected_shards(stack: Stack, users: list[ApiUser]) -> dict[str, set[str]]:
    """The group channels each server should carry, by the layer's own consistent hashing."""
    routing = RedisPubSubLoopLayer(
        hosts=[{"address": url} for url in stack.layer_urls], prefix=stack.prefix
    )
    shards: dict[str, set[str]] = {url: set() for url in stack.layer_urls}
    for user in users:
        channel = routing._get_group_channel_name(user_group(user.id))
        shards[routing._get_shard(channel).host["address"]].add(channel)
    return shards


def subscribed_groups(url: str, prefix: str) -> dict[str, int]:
    """Group channels of `prefix` subscribed on that server, with their subscriber counts."""
    client = redis.Redis.from_url(url)
    try:
        channels = [name.decode() for name in client.pubsub_channels(f"{prefix}__group__*")]
        return {name.decode(): count for name, count in client.pubsub_numsub(*channels)}
    finally:
        client.close()


def direct_connections(stack: Stack) -> list[dict]:
    """Backends of the service's processes (their PGAPPNAME) that are not PgBouncer's."""
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database.get("HOST") or "127.0.0.1",
        port=database.get("PORT") or 5432,
        user=database.get("USER") or "postgres",
        dbname=database["NAME"],
        autocommit=True,
    ) as direct:
        backends = direct.execute(
            "SELECT pid, application_name, client_port FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'e2e-%%'",
            [database["NAME"]],
        ).fetchall()
    bouncers = {server["remote_pid"] for server in stack.bouncer.admin("SHOW SERVERS")}
    return [
        {"pid": pid, "application_name": name, "client_port": port}
        for pid, name, port in backends
        if pid not in bouncers
    ]


def server_connection_settings(stack: Stack) -> dict[int, str]:
    """synchronous_commit on every server connection PgBouncer may have, by backend pid.

    Each open transaction holds a server connection of its own, so as many of them as the pool
    may have cover every one: a session setting left behind by any process shows here.
    """
    holders = []
    try:
        for _ in range(SERVER_CONNECTIONS):
            holder = psycopg.connect(stack.bouncer.url)  # not autocommit: BEGIN, then hold
            holders.append(holder)
            holder.execute("SELECT 1")
        servers = {server["remote_pid"] for server in stack.bouncer.admin("SHOW SERVERS")}
        seen = {
            pid: setting
            for pid, setting in (
                holder.execute(
                    "SELECT pg_backend_pid(), current_setting('synchronous_commit')"
                ).fetchone()
                for holder in holders
            )
        }
        assert set(seen) == servers  # all of them, and only PgBouncer's
        return seen
    finally:
        for holder in holders:
            holder.close()


def logged_errors(process: ManagedProcess) -> list[str]:
    return [
        line
        for line in process.output(current_only=False).splitlines()
        if any(word in line for word in LOG_ERRORS)
    ]


async def test_pushes_reach_every_socket_through_both_shards_and_pgbouncer_alone(
    stack, transactional_db
):
    gate = asyncio.Semaphore(AT_ONCE)

    async def open_socket(index: int) -> tuple[ApiUser, LiveSocket]:
        web = stack.web[index % 2]
        async with gate:
            user = await ApiUser.register(web.url)
            socket = await LiveSocket.open(
                web.ws_url(SOCKET_PATH), token=user.access, label=f"user{index}@{web.name}"
            )
            await socket.next_message(FIRST_MESSAGE_SECONDS)
        return user, socket

    opened = await asyncio.gather(*(open_socket(index) for index in range(USERS)))
    users = [user for user, _ in opened]
    sockets = [socket for _, socket in opened]
    try:
        assert [socket.statuses[0]["details"]["first_name"] for socket in sockets] == [
            False
        ] * USERS

        async def write(user: ApiUser) -> None:
            async with gate:
                await user.patch_profile(first_name="Ada")

        await asyncio.gather(*(write(user) for user in users))
        await asyncio.gather(
            *(
                socket.wait_for_status(lambda status: status["details"]["first_name"], PUSH_SECONDS)
                for socket in sockets
            )
        )

        assert [len(socket.messages) for socket in sockets] == [2] * USERS  # first, then push

        async def relayed() -> bool:
            return await in_django(lambda: OutboxEvent.objects.pending().count()) == 0

        await async_wait_until(relayed, PUSH_SECONDS, describe="every outbox row relayed")

        # Each server carries exactly the groups that hash to it, one web process subscribed
        # to each, and both carry some: the pushes that arrived went through both.
        shards = expected_shards(stack, users)
        assert all(shards.values()), shards
        assert {url: subscribed_groups(url, stack.prefix) for url in stack.layer_urls} == {
            url: dict.fromkeys(channels, 1) for url, channels in shards.items()
        }

        # Every process reached the database through PgBouncer, and none around it.
        pools = stack.bouncer.admin("SHOW POOLS")
        [pool] = [row for row in pools if row["database"] == stack.bouncer.database]
        assert pool["pool_mode"] == "transaction"
        assert direct_connections(stack) == []
        clients = [
            row["application_name"]
            for row in stack.bouncer.admin("SHOW CLIENTS")
            if row["application_name"].startswith("e2e-")
        ]
        assert set(clients) == {"e2e-web0", "e2e-web1", "e2e-worker0"}
        assert len(clients) > SERVER_CONNECTIONS  # so their transactions shared servers
        # No transaction left a setting behind on a shared server connection (the worker's
        # relay commits without waiting for the disk, in its own transactions only).
        assert set(server_connection_settings(stack).values()) == {"on"}

        assert {process.name: logged_errors(process) for process in (*stack.web, stack.worker)} == {
            "web0": [],
            "web1": [],
            "worker0": [],
        }
        pgbouncer_log = stack.bouncer.log_path.read_text().splitlines()
        assert [
            line for line in pgbouncer_log if any(word in line for word in PGBOUNCER_LOG_ERRORS)
        ] == []
    finally:
        for socket in sockets:
            await socket.close()
        for user in users:
            await user.aclose()

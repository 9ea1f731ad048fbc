"""The pooled database backend gets going again at once after a database restart.

Found by the fault suite (tests/faults): with the pool's own check, each broken idle
connection cost another round of psycopg_pool's backoff (1 s, 2 s, 4 s...) in the thread
that runs all of a web process's database work, and sockets converged only 8-10 s after a
fast PostgreSQL restart.
"""

import time

import pytest
from django.db import connection

from config.postgresql.base import DatabaseWrapper

POOL_SIZE = 4


@pytest.fixture
def pooled_backend(db):
    """A second connection to the test database through config.postgresql with a pool."""
    settings_dict = {
        **connection.settings_dict,
        "ENGINE": "config.postgresql",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {"pool": {"min_size": POOL_SIZE, "max_size": POOL_SIZE, "timeout": 10}},
    }
    backend = DatabaseWrapper(settings_dict, alias="pool_restart_test")
    backend.pool.open(wait=True, timeout=10)
    yield backend
    backend.close()
    backend.close_pool()


def pooled_backend_pids(backend: DatabaseWrapper) -> set[int]:
    held = [backend.pool.getconn() for _ in range(POOL_SIZE)]
    pids = {conn.info.backend_pid for conn in held}
    for conn in held:
        backend.pool.putconn(conn)
    return pids


def terminate(pids: set[int]) -> None:
    """What a database restart does to a pool's idle connections: the server ends them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", [list(pids)])
        deadline = time.monotonic() + 10
        while True:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh read in this transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)]
            )
            if cursor.fetchone()[0] == 0:
                return
            assert time.monotonic() < deadline, "the terminated backends did not end"
            cursor.execute("SELECT pg_sleep(0.02)")


def test_a_query_after_every_pooled_connection_broke_runs_on_a_new_one_without_backoff(
    pooled_backend,
):
    broken = pooled_backend_pids(pooled_backend)
    assert len(broken) == POOL_SIZE
    terminate(broken)

    started = time.monotonic()
    with pooled_backend.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    elapsed = time.monotonic() - started
    pooled_backend.close()  # back to the pool

    # With the pool's own check: 1 s + 2 s + 4 s of backoff, then the 10 s pool timeout.
    assert elapsed < 0.8, f"took {elapsed:.2f} s"
    assert pid not in broken
    # The other broken connections went with the first one: the pool holds new ones only.
    assert pooled_backend_pids(pooled_backend) & broken == set()


def test_a_healthy_pooled_connection_is_handed_out_as_it_is(pooled_backend):
    before = pooled_backend_pids(pooled_backend)

    with pooled_backend.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    pooled_backend.close()

    assert pid in before
    assert pooled_backend_pids(pooled_backend) == before

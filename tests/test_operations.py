"""Probes and the settings' production safety."""

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SETUP_DJANGO = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()"
)


def test_healthz(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_when_everything_is_up(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port bound but not listening: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_down(client, settings, closed_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert sorted(body) == ["database", "redis"]
    assert body["database"] == "ok"
    assert body["redis"] != "ok"
    assert body["redis"] == "error: ConnectionError"


def test_probes_answer_get_only(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def setup_django(**env_changes: str) -> subprocess.CompletedProcess:
    env = os.environ.copy()
    env.pop("SECRET_KEY", None)
    env.pop("DEBUG", None)
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", SETUP_DJANGO],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_secret_key_refuses_to_start():
    result = setup_django(DEBUG="0")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_production_with_the_development_secret_key_refuses_to_start():
    development_key = "development-only-secret-key-never-use-in-production-0123456789"

    result = setup_django(DEBUG="0", SECRET_KEY=development_key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_production_with_a_random_secret_key_starts():
    secret = "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789!@#%^&*(-_=+)") for _ in range(50)
    )

    result = setup_django(DEBUG="0", SECRET_KEY=secret)

    assert (result.returncode, result.stderr) == (0, "")


def test_development_default_starts_without_secret_key():
    result = setup_django()

    assert (result.returncode, result.stderr) == (0, "")


def _synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_only_worker_connections_commit_without_waiting_for_the_disk():
    from django.db import connection
    from django.db.backends.signals import connection_created

    from config.celery import _relay_commits_skip_flush, relay_bookkeeping_without_flush

    connection.close()
    assert _synchronous_commit() == "on"  # web processes: every write is durable
    relay_bookkeeping_without_flush()  # what a worker runs as it starts
    try:
        connection.close()
        assert _synchronous_commit() == "off"
    finally:
        connection_created.disconnect(_relay_commits_skip_flush)
        connection.close()
    assert _synchronous_commit() == "on"

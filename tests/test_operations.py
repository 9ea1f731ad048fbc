"""Probes and the settings' production safety."""

import json
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


def settings_of_new_process(*names: str, **env_changes: str | None) -> dict:
    """Settings as a process started with `env_changes` (None: unset) builds them."""
    script = (
        f"{SETUP_DJANGO}; import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {list(names)!r}}}))"
    )
    env = {**os.environ, **env_changes}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def channel_layer_host(url: str) -> dict:
    return {"address": url, "socket_timeout": None, "max_connections": 1000}


def test_channel_layer_is_on_the_redis_server_by_default():
    got = settings_of_new_process(
        "CHANNEL_LAYERS", REDIS_URL="redis://10.0.0.9:6379/5", CHANNEL_LAYER_URLS=None
    )

    assert got["CHANNEL_LAYERS"]["default"]["CONFIG"] == {
        "hosts": [channel_layer_host("redis://10.0.0.9:6379/5")],
        "prefix": "wizard-db5",
    }


def test_channel_layer_shards_are_the_listed_servers_in_their_order():
    urls = ["redis://10.0.0.2:6379/3", "redis://10.0.0.1:6379/3"]

    got = settings_of_new_process(
        "CHANNEL_LAYERS", REDIS_URL="redis://10.0.0.9:6379/5", CHANNEL_LAYER_URLS=",".join(urls)
    )

    assert got["CHANNEL_LAYERS"]["default"]["CONFIG"] == {
        "hosts": [channel_layer_host(url) for url in urls],
        "prefix": "wizard-db5",  # after REDIS_URL's database, as with one server
    }


def test_behind_pgbouncer_no_server_side_cursors_and_no_prepared_statements():
    url = "postgres://wizard@10.0.0.3:6432/wizard?prepare_threshold=5"
    direct = settings_of_new_process("DATABASES", DATABASE_URL=url, DATABASE_PGBOUNCER=None)
    pooled = settings_of_new_process("DATABASES", DATABASE_URL=url, DATABASE_PGBOUNCER="1")

    assert "DISABLE_SERVER_SIDE_CURSORS" not in direct["DATABASES"]["default"]
    assert direct["DATABASES"]["default"]["OPTIONS"]["prepare_threshold"] == 5
    assert pooled["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled["DATABASES"]["default"]["OPTIONS"]["prepare_threshold"] is None

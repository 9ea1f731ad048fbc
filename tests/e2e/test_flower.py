"""Flower as the Procfile starts it: credentials on every page, never the broker's password.

A worker and flower run against a Redis of this module's own that requires a password, the
way a deployment's Redis does: the worker's replies (`stats`, `conf`) and flower's pages are
then the real ones, and any of them could carry the password in its broker URL.
"""

import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.harness import (
    READY_TIMEOUT_SECONDS,
    Harness,
    ManagedProcess,
    PrivateRedis,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.e2e

CREDENTIALS = ("operator", "e2e-flower-Lantern-42")
DEVELOPMENT_CREDENTIALS = ("flower", "development-only-password")  # config/flowerconfig.py
PRODUCTION_SECRET_KEY = "e2e-production-secret-key-" + "x" * 32
MASK = "********"
# Flower spends seconds importing (more on a loaded machine) and three processes start at once.
START_TIMEOUT_SECONDS = 2 * READY_TIMEOUT_SECONDS


@dataclass
class Flower:
    harness: Harness
    redis: PrivateRedis
    worker: ManagedProcess
    flower: ManagedProcess  # FLOWER_BASIC_AUTH set
    development_flower: ManagedProcess  # DEBUG on, FLOWER_BASIC_AUTH unset

    @property
    def worker_name(self) -> str:
        return f"{self.harness.channel_layer_prefix}-worker0@{socket.gethostname()}"  # %h

    def get(self, path: str, *, auth: tuple[str, str] | None = CREDENTIALS) -> httpx.Response:
        return httpx.get(self.flower.url + path, auth=auth, timeout=5.0)


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    """A redis-server that answers only with its password; no persistence, its own folder."""
    if shutil.which("redis-server") is None:
        # The test command needs redis-server anyway (scripts/services.sh): its absence is a
        # broken test machine, not a pass.
        pytest.fail("redis-server is not installed: the test starts a Redis with a password")
    workdir = tmp_path_factory.mktemp("redis-with-password")
    with PrivateRedis(port=free_port(), workdir=workdir, password=secrets.token_hex(16)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(harness_factory, password_redis) -> Flower:
    harness = harness_factory(
        REDIS_URL=password_redis.url,
        CELERY_BROKER_URL=password_redis.url,
        FLOWER_BASIC_AUTH=":".join(CREDENTIALS),
    )
    worker = harness.add_worker()
    flower = harness.add_flower()
    development_flower = harness.add_flower(env={"DEBUG": "1", "FLOWER_BASIC_AUTH": None})
    harness.launch([worker, flower, development_flower], timeout=START_TIMEOUT_SECONDS)
    stack = Flower(harness, password_redis, worker, flower, development_flower)

    def worker_known() -> bool:
        # Flower asks the workers for their replies in the background; until then the
        # worker's page would be a 404 and the test would check nothing.
        workers = stack.get("/api/workers?refresh=1").json()
        return "conf" in workers.get(stack.worker_name, {})

    wait_until(worker_known, READY_TIMEOUT_SECONDS, interval=0.2, describe="flower sees the worker")
    return stack


def test_every_page_asks_for_credentials(stack):
    pages = ("/", "/workers", f"/worker/{stack.worker_name}", "/broker", "/tasks")
    for path in (*pages, "/api/workers", "/api/tasks", "/metrics"):
        assert stack.get(path, auth=None).status_code == 401, path
        assert stack.get(path, auth=(CREDENTIALS[0], "wrong")).status_code == 401, path
        assert stack.get(path, auth=("someone", CREDENTIALS[1])).status_code == 401, path
        assert stack.get(path).status_code == 200, path


def test_the_development_credential_is_refused_when_flower_basic_auth_is_set(stack):
    assert stack.get("/workers", auth=DEVELOPMENT_CREDENTIALS).status_code == 401


def test_no_page_shows_the_broker_password(stack):
    pages = {
        "worker list": stack.get("/workers"),
        "worker list (json)": stack.get("/workers?json=1"),
        "worker detail": stack.get(f"/worker/{stack.worker_name}"),
        "broker": stack.get("/broker"),
        "api workers": stack.get("/api/workers?refresh=1"),
    }
    for page, response in pages.items():
        assert response.status_code == 200, page
        assert stack.redis.password not in response.text, page
    # The worker's page does show its configuration, with the URLs' passwords masked.
    masked_url = f"redis://:{MASK}@127.0.0.1:{stack.redis.port}/0"
    conf = pages["api workers"].json()[stack.worker_name]["conf"]
    assert conf["CELERY_BROKER_URL"] == masked_url
    assert conf["REDIS_URL"] == masked_url
    assert conf["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"][0]["address"] == masked_url
    assert masked_url in pages["worker detail"].text


def test_with_debug_on_and_no_credentials_set_the_development_credential_opens_flower(stack):
    url = stack.development_flower.url + "/workers"
    assert httpx.get(url, timeout=5.0).status_code == 401
    assert httpx.get(url, auth=CREDENTIALS, timeout=5.0).status_code == 401
    assert httpx.get(url, auth=DEVELOPMENT_CREDENTIALS, timeout=5.0).status_code == 200


def test_with_debug_off_flower_refuses_to_start_without_real_credentials(harness_factory):
    refusals = {
        None: "flower: FLOWER_BASIC_AUTH (user:password) must be set when DEBUG is off.",
        ":".join(DEVELOPMENT_CREDENTIALS): (
            "flower: FLOWER_BASIC_AUTH must not be the development credential when DEBUG is off."
        ),
        "operator": "flower: FLOWER_BASIC_AUTH must be user:password pairs, separated by commas.",
    }
    harness = harness_factory(DEBUG="0", SECRET_KEY=PRODUCTION_SECRET_KEY)
    flowers = {value: harness.add_flower(env={"FLOWER_BASIC_AUTH": value}) for value in refusals}
    for flower in flowers.values():  # in parallel: each spends seconds importing
        flower.spawn()
    for value, flower in flowers.items():
        code = flower.popen.wait(timeout=START_TIMEOUT_SECONDS)
        assert code != 0, value
        assert flower.output().strip().splitlines()[-1] == refusals[value], value
        with pytest.raises(httpx.ConnectError):
            httpx.get(flower.url + "/healthcheck", timeout=1.0)

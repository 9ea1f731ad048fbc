"""The embedded SQLite default takes concurrent writes without a 500.

A web process and a worker run on a fresh SQLite file (no DATABASE_URL, as on a laptop
after `scripts/run`): one user's "save all" (PATCH me, PUT prompt, POST channel at once),
many users at once, and back-to-back writes, with the relay writing its claims meanwhile.
"""

import asyncio
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from tests.e2e.clients import ApiUser
from tests.e2e.harness import PROJECT_ROOT, Harness

pytestmark = pytest.mark.e2e

USERS = 6
ROUNDS = 5


@pytest.fixture
def sqlite_stack(tmp_path):
    harness = Harness(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        redis_url=settings.REDIS_URL,
        workdir=tmp_path,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_ROOT,
        env=harness.environment(),
        check=True,
        capture_output=True,
    )
    web, worker = harness.add_web(), harness.add_worker()
    with harness:
        harness.launch([web, worker])
        yield web


async def save_all(user: ApiUser, round_number: int) -> list[int]:
    answers = await asyncio.gather(
        user.http.patch("/api/v1/accounts/me", json={"first_name": f"Ada {round_number}"}),
        user.http.put("/api/v1/ai-prompts/manual", json={"content": f"Prompt {round_number}"}),
        user.http.post(
            "/api/v1/channels",
            json={"platform": "telegram", "external_id": uuid.uuid4().hex[:12]},
        ),
    )
    return [answer.status_code for answer in answers]


async def test_concurrent_writes_on_sqlite_never_answer_500(sqlite_stack):
    web = sqlite_stack
    users = [await ApiUser.register(web.url) for _ in range(USERS)]
    try:
        codes: list[int] = []
        for round_number in range(ROUNDS):
            rounds = await asyncio.gather(*(save_all(user, round_number) for user in users))
            codes += [code for answer in rounds for code in answer]
        for number in range(20):
            answer = await users[0].http.patch(
                "/api/v1/accounts/me", json={"last_name": f"L{number}"}
            )
            codes.append(answer.status_code)
        status = await users[0].wizard_status()
    finally:
        for user in users:
            await user.aclose()

    assert [code for code in codes if code >= 300] == []
    assert status["details"]["first_name"] and status["details"]["manual_prompt"]

"""What guessing passwords costs the service, on the Procfile's web process with the real hasher.

    uv run python -m tests.benchmark_sign_in
    uv run python -m tests.benchmark_sign_in --attackers 20 --seconds 10

Against a PostgreSQL database of its own (`wizard_status_bench_sign_in`, recreated) and the
local Redis, it starts the Procfile's `web` (DEBUG off, Django's default PBKDF2 hasher) and
prints, in one run:

- the latency of a wrong password (hashed), of a locked-out attempt (refused before any
  hashing) and of an authenticated GET (the Bearer check: one query for user, generation and
  sign-in);
- a legitimate user's PATCH latency alone, then while `--attackers` clients send wrong
  passwords as fast as they can: all at one account from one address (locked out after 5),
  and each at accounts of its own (every attempt hashed until its account locks).
"""

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.benchmark import (
    Processes,
    bench_environment,
    free_port,
    http_ok,
    percentile,
    poll,
    recreate_database,
)
from tests.e2e.harness import procfile_command, with_options

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "wizard_status_bench_sign_in"
PASSWORD = "a benchmark pass phrase 7"
WRONG = "not the password at all"


def create_users(env: dict[str, str], count: int) -> None:
    """Users with one real PBKDF2 hash (made once: hashing it per user would take minutes)."""
    code = (
        "import django; django.setup()\n"
        "from django.contrib.auth.hashers import make_password\n"
        "from onboarding.models import OnboardingProfile, User\n"
        f"hashed = make_password({PASSWORD!r})\n"
        f"users = [User(username=f'bench{{i}}', password=hashed) for i in range({count})]\n"
        "User.objects.bulk_create(users)\n"
        "OnboardingProfile.objects.bulk_create(\n"
        "    [OnboardingProfile(user=user) for user in User.objects.all()])\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def ms(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:.1f} / p95 {percentile(values, 0.95) * 1000:.1f}"
        f" / max {max(values) * 1000:.1f} ms (n={len(values)})"
    )


async def timed(call) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await call()
    return time.perf_counter() - started, response


async def token_request(client: httpx.AsyncClient, username: str, password: str):
    return await client.post(
        "/api/v1/auth/token", json={"username": username, "password": password}
    )


async def patches_for(client: httpx.AsyncClient, access: str, seconds: float) -> list[float]:
    """A user's PATCHes back to back for `seconds`: their latencies."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {access}"}
    deadline = time.monotonic() + seconds
    flip = 0
    while time.monotonic() < deadline:
        flip += 1
        took, response = await timed(
            lambda flip=flip: client.patch(
                "/api/v1/accounts/me", json={"first_name": f"n{flip}"}, headers=headers
            )
        )
        assert response.status_code == 200, response.text
        latencies.append(took)
    return latencies


def attack(base: str, usernames_per_attacker: list[list[str]], stop, started, results) -> None:
    """The attackers, in a process of their own: each sends wrong passwords back to back."""

    async def attacker(client: httpx.AsyncClient, usernames: list[str], codes: list[int]):
        turn = 0
        while not stop.is_set():
            response = await token_request(client, usernames[turn % len(usernames)], WRONG)
            codes.append(response.status_code)
            turn += 1

    async def run() -> list[int]:
        codes: list[int] = []
        limits = httpx.Limits(max_connections=len(usernames_per_attacker) + 5)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            tasks = [attacker(client, usernames, codes) for usernames in usernames_per_attacker]
            started.set()
            await asyncio.gather(*tasks)
        return codes

    results.put(asyncio.run(run()))


async def under_attack(base, access, attackers, seconds, usernames_of) -> tuple[list, list]:
    stop, started = multiprocessing.Event(), multiprocessing.Event()
    results = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=attack,
        args=(base, [usernames_of(n) for n in range(attackers)], stop, started, results),
    )
    process.start()
    started.wait(30)
    await asyncio.sleep(0.5)  # the attack is under way before the user writes
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        latencies = await patches_for(client, access, seconds)
    stop.set()
    codes = results.get(timeout=120)
    process.join(30)
    return latencies, codes


def codes_line(codes: list[int]) -> str:
    counts = {code: codes.count(code) for code in sorted(set(codes))}
    return ", ".join(f"{count}x {code}" for code, count in counts.items())


async def report(args, base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        wrong = [(await timed(lambda n=n: token_request(client, f"bench{n}", WRONG)))[0]
                 for n in range(1, 11)]  # fmt: skip
        for _ in range(5):
            await token_request(client, "bench0", WRONG)
        locked = []
        for _ in range(20):
            took, response = await timed(lambda: token_request(client, "bench0", PASSWORD))
            assert response.status_code == 429, response.text
            locked.append(took)
        signed_in = await token_request(client, "bench11", PASSWORD)
        access = signed_in.json()["access"]
        reads = []
        for _ in range(50):
            took, response = await timed(
                lambda: client.get(
                    "/api/v1/accounts/me", headers={"Authorization": f"Bearer {access}"}
                )
            )
            reads.append(took)
        alone = await patches_for(client, access, args.seconds)

    print(f"wrong password (hashed):        {ms(wrong)}")
    print(f"locked-out attempt (no hash):   {ms(locked)}")
    print(f"authenticated GET /accounts/me: {ms(reads)}")
    print(f"PATCH alone:                    {ms(alone)}")

    latencies, codes = await under_attack(
        base, access, args.attackers, args.seconds, lambda n: ["bench1"]
    )
    print(f"PATCH, {args.attackers} attackers at one account: {ms(latencies)}")
    print(f"    their answers: {codes_line(codes)} ({len(codes) / args.seconds:.0f}/s)")
    first = 100  # accounts bench100... for the attackers with accounts of their own
    per_attacker = args.accounts_per_attacker
    latencies, codes = await under_attack(
        base,
        access,
        args.attackers,
        args.seconds,
        lambda n: [f"bench{first + n * per_attacker + k}" for k in range(per_attacker)],
    )
    print(f"PATCH, {args.attackers} attackers at accounts of their own: {ms(latencies)}")
    print(f"    their answers: {codes_line(codes)} ({len(codes) / args.seconds:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10, help="of PATCHing, per phase")
    parser.add_argument("--accounts-per-attacker", type=int, default=20)
    parser.add_argument("--web-processes", type=int, default=2)
    args = parser.parse_args()

    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database_url = recreate_database(admin_url, BENCH_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
    redis.Redis.from_url(redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="wizard-bench-sign-in-"))
    env = bench_environment(database_url, redis_url, tmp)
    env.pop("FAST_PASSWORD_HASHER", None)  # the real hasher is what is measured
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    create_users(env, 100 + args.attackers * args.accounts_per_attacker)
    port = free_port()
    procs = Processes(env, tmp)
    variables = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(args.web_processes)}
    assignments, argv = procfile_command("web", variables=variables)
    procs.start("web", with_options(argv, {"--log-level": "warning"}), **assignments)
    try:
        base = f"http://127.0.0.1:{port}"
        poll(lambda: http_ok(f"{base}/healthz"), timeout=60, what="the web process")
        asyncio.run(report(args, base))
    finally:
        procs.stop()
        print(f"logs: {tmp}")


if __name__ == "__main__":
    main()

"""Quotas (contract section 6): each answers 429 with Retry-After past its limit, lets a
normal user through, counts across processes (Redis) and cannot be raced past.

The suite runs with the quotas lifted (scripts/test); each test here sets the one it tries.
"""

import json

import pytest
from django.test import Client

from onboarding.models import Channel
from outbox.models import OutboxEvent
from tests.concurrency import run_behind_barrier
from tests.conftest import bearer_client, onboarding_data_of
from tests.factories import PASSWORD, tokens_for

pytestmark = pytest.mark.django_db(transaction=True)


def assert_too_many(response, *, most: int) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body == {
        "detail": "Too many requests; try again later.",
        "retry_after": body["retry_after"],
    }
    assert 1 <= body["retry_after"] <= most
    assert response["Retry-After"] == str(body["retry_after"])


def json_call(client: Client, method: str, path: str, body=None):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(path, data=data, content_type="application/json")


# One quota for every write of one user

WRITES = [
    ("patch", "/api/v1/accounts/me", {"first_name": "Ada"}),
    ("put", "/api/v1/ai-prompts/manual", {"content": "Be kind."}),
    ("post", "/api/v1/channels", {"platform": "telegram", "external_id": "tg-quota"}),
    ("delete", "/api/v1/ai-prompts/manual", None),
    ("patch", "/api/v1/accounts/wizard-complete", None),
]


def test_every_onboarding_write_counts_toward_one_quota_per_user(user, other_user, settings):
    settings.RATE_LIMIT_WRITES = "4/m"
    api, theirs = bearer_client(user), bearer_client(other_user)
    answers = [json_call(api, method, path, body).status_code for method, path, body in WRITES]
    assert answers[:4] == [200, 200, 201, 204]
    assert_too_many(json_call(api, *WRITES[4]), most=60)

    before, rows = onboarding_data_of(user), OutboxEvent.objects.count()
    for method, path, body in WRITES:
        assert_too_many(json_call(api, method, path, body), most=60)
    channel = Channel.objects.get(user=user)
    assert_too_many(api.delete(f"/api/v1/channels/{channel.pk}"), most=60)
    # Refused writes change nothing; reads and other users go on.
    assert onboarding_data_of(user) == before
    assert OutboxEvent.objects.count() == rows
    assert api.get("/api/v1/accounts/me").status_code == 200
    assert api.get("/api/v1/accounts/wizard-status").status_code == 200
    assert json_call(theirs, *WRITES[0]).status_code == 200


def test_a_user_well_within_the_default_quota_is_never_refused(user, settings):
    """The settings' default: a person filling the wizard, even saving on every keystroke of
    a 40-letter name, never meets it."""
    settings.RATE_LIMIT_WRITES = "120/m"
    api = bearer_client(user)
    for number in range(40):
        answer = json_call(api, "patch", "/api/v1/accounts/me", {"first_name": "A" * number})
        assert answer.status_code == 200


def test_concurrent_writes_cannot_slip_past_the_quota_together(user, settings):
    """What breaks a read-then-write counter (Ninja's SimpleRateThrottle on a cache): all
    requests read the same count and all pass."""
    settings.RATE_LIMIT_WRITES = "5/m"
    access = tokens_for(user).access

    def write(number: int) -> int:
        client = Client(headers={"Authorization": f"Bearer {access}"})
        return json_call(
            client, "patch", "/api/v1/accounts/me", {"last_name": f"L{number}"}
        ).status_code

    codes = run_behind_barrier([lambda n=n: write(n) for n in range(16)])
    assert sorted(codes) == [200] * 5 + [429] * 11


def test_a_quota_lets_requests_through_while_redis_is_down(user, settings):
    settings.RATE_LIMIT_WRITES = "1/m"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    api = bearer_client(user)
    for number in range(3):
        assert (
            json_call(api, "patch", "/api/v1/accounts/me", {"first_name": f"A{number}"}).status_code
            == 200
        )


# Tickets, per user


def test_tickets_are_limited_per_user(user, other_user, settings):
    settings.RATE_LIMIT_TICKETS = "2/m"
    api = bearer_client(user)
    assert [api.post("/api/v1/realtime/ticket").status_code for _ in range(2)] == [201, 201]
    assert_too_many(api.post("/api/v1/realtime/ticket"), most=60)
    assert bearer_client(other_user).post("/api/v1/realtime/ticket").status_code == 201


# Token refresh, per sign-in


def refresh(refresh_token: str):
    return json_call(Client(), "post", "/api/v1/auth/token/refresh", {"refresh": refresh_token})


def test_refreshes_are_limited_per_sign_in_and_a_refused_one_spends_nothing(user, settings):
    settings.RATE_LIMIT_REFRESH = "2/m"
    current = tokens_for(user).refresh
    for _ in range(2):
        answer = refresh(current)
        assert answer.status_code == 200
        current = answer.json()["refresh"]
    assert_too_many(refresh(current), most=60)

    # Another sign-in of the same user has its own count.
    assert refresh(tokens_for(user).refresh).status_code == 200
    # The refused token was not spent: once allowed, it refreshes (no reuse detected).
    settings.RATE_LIMIT_REFRESH = "100/m"
    assert refresh(current).status_code == 200


def test_an_invalid_refresh_token_is_401_not_counted(user, settings):
    settings.RATE_LIMIT_REFRESH = "1/m"
    for _ in range(3):
        assert refresh("not-a-token").status_code == 401


# Registrations, per client address


def register(address: str, username: str):
    client = Client(REMOTE_ADDR=address)
    return json_call(
        client, "post", "/api/v1/auth/register", {"username": username, "password": PASSWORD}
    )


def test_registrations_are_limited_per_client_address(db, settings):
    settings.RATE_LIMIT_REGISTER = "2/h"
    assert register("203.0.113.7", "quota-a").status_code == 201
    assert register("203.0.113.7", "quota-b").status_code == 201
    assert_too_many(register("203.0.113.7", "quota-c"), most=3600)
    assert register("203.0.113.8", "quota-c").status_code == 201


def test_the_register_quota_reads_the_address_behind_trusted_proxies(db, settings):
    settings.RATE_LIMIT_REGISTER = "1/h"
    settings.TRUSTED_PROXY_COUNT = 1

    def behind_proxy(client_address: str, username: str):
        client = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=client_address)
        body = {"username": username, "password": PASSWORD}
        return json_call(client, "post", "/api/v1/auth/register", body)

    assert behind_proxy("198.51.100.1", "proxied-a").status_code == 201
    assert behind_proxy("198.51.100.2", "proxied-b").status_code == 201
    assert_too_many(behind_proxy("198.51.100.1", "proxied-c"), most=3600)


# Active channels per user


def connect(api: Client, external_id: str):
    body = {"platform": "instagram", "external_id": external_id}
    return json_call(api, "post", "/api/v1/channels", body)


def test_one_channel_over_the_limit_is_409_channel_limit(user, settings):
    settings.CHANNELS_PER_USER_LIMIT = 2
    api = bearer_client(user)
    assert [connect(api, f"ig-{n}").status_code for n in range(2)] == [201, 201]
    before = onboarding_data_of(user)

    refused = connect(api, "ig-2")
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "channel_limit",
        "detail": "At most 2 channels can be connected; disconnect one first.",
    }
    assert onboarding_data_of(user) == before
    # Connecting one already connected is still 200; a freed slot can be used.
    assert connect(api, "ig-0").status_code == 200
    first = Channel.objects.get(user=user, external_id="ig-0")
    assert api.delete(f"/api/v1/channels/{first.pk}").status_code == 204
    assert connect(api, "ig-2").status_code == 201
    assert len(api.get("/api/v1/channels").json()) == 2


def test_concurrent_connects_cannot_pass_the_channel_limit(user, settings):
    settings.CHANNELS_PER_USER_LIMIT = 3
    access = tokens_for(user).access

    def connect_one(number: int) -> int:
        client = Client(headers={"Authorization": f"Bearer {access}"})
        return connect(client, f"ig-race-{number}").status_code

    codes = run_behind_barrier([lambda n=n: connect_one(n) for n in range(10)])
    assert sorted(codes) == [201] * 3 + [409] * 7
    assert Channel.objects.filter(user=user, disconnected_at__isnull=True).count() == 3


def test_a_default_user_may_connect_ten_channels(user):
    api = bearer_client(user)
    assert {connect(api, f"ig-ten-{n}").status_code for n in range(10)} == {201}
    assert connect(api, "ig-ten-10").json()["code"] == "channel_limit"


def test_another_user_is_not_counted(user, other_user, settings):
    settings.CHANNELS_PER_USER_LIMIT = 1
    assert connect(bearer_client(user), "ig-mine").status_code == 201
    assert connect(bearer_client(other_user), "ig-theirs").status_code == 201

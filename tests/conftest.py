import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from django.utils import timezone

from config.redis import redis_client
from onboarding.models import Channel, ManualPrompt, OnboardingProfile, User
from outbox.models import OutboxEvent, Topic
from tests.factories import PASSWORD, make_user, tokens_for

# Counts kept in Redis by user id, name or address, which repeat across test runs.
_COUNTED_IN_REDIS = ("wizard:sign-in-failures:*", "wizard:quota:*", "wizard:socket-leases:*")


@pytest.fixture(autouse=True)
def no_counts_left_over():
    """Sign-in attempts, quotas and socket leases live in Redis: each test starts with none,
    as users' ids and names repeat across test runs on the same Redis database."""
    client = redis_client()
    keys = [key for match in _COUNTED_IN_REDIS for key in client.scan_iter(match=match, count=1000)]
    if keys:
        client.delete(*keys)
    yield


@pytest.fixture
def user(db):
    return make_user()


@pytest.fixture
def other_user(db):
    return make_user()


def bearer_client(user) -> Client:
    access = tokens_for(user).access
    return Client(headers={"Authorization": f"Bearer {access}"})


@pytest.fixture
def api(user) -> Client:
    """A client authenticated as `user` with a Bearer access token."""
    return bearer_client(user)


@pytest.fixture
def anonymous() -> Client:
    return Client()


@pytest.fixture
def other_api(other_user) -> Client:
    """A client authenticated as `other_user` with a Bearer access token."""
    return bearer_client(other_user)


def session_client(user) -> Client:
    """A client logged in through the API, enforcing CSRF like a browser would."""
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/auth/login",
        {"username": user.username, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return client


@pytest.fixture
def session_api(user) -> Client:
    """A client authenticated as `user` with the session cookie (and CSRF enforced)."""
    return session_client(user)


# The admin, for the onboarding and the outbox admin tests.


@pytest.fixture
def admin_client() -> Client:
    """Logged in as a superuser made like any other user (pytest-django's is replaced)."""
    superuser = make_user(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def events_in_every_state() -> dict[str, OutboxEvent]:
    """One outbox row of one user in each state: pending, failed and relayed."""
    user = make_user()
    now = timezone.now()
    pending = OutboxEvent.objects.create(user=user, topic=Topic.PROFILE_UPDATED, version=1)
    failed = OutboxEvent.objects.create(
        user=user,
        topic=Topic.MANUAL_PROMPT_SAVED,
        version=2,
        attempts=8,
        failed_at=now,
        last_error="ConnectionError",
    )
    relayed = OutboxEvent.objects.create(
        user=user, topic=Topic.CHANNEL_CONNECTED, version=3, attempts=1, relayed_at=now
    )
    return {"pending": pending, "failed": failed, "relayed": relayed}


def json_datetime(moment) -> str:
    """How the API renders a datetime (Ninja uses Django's JSON encoder)."""
    return DjangoJSONEncoder().default(moment)


def outbox_rows() -> list[tuple]:
    """Every outbox row as (user id, topic, version, payload), oldest first."""
    return list(
        OutboxEvent.objects.order_by("id").values_list("user_id", "topic", "version", "payload")
    )


def onboarding_data_of(user) -> dict:
    """Everything an onboarding write may change for `user`, read fresh from the database."""
    row = User.objects.filter(pk=user.pk).values().first()
    profile = OnboardingProfile.objects.filter(user_id=user.pk).values().first()
    prompt = ManualPrompt.objects.filter(user_id=user.pk).values("content", "updated_at").first()
    channels = list(
        Channel.objects.filter(user_id=user.pk)
        .order_by("id")
        .values_list("id", "platform", "external_id", "name", "connected_at", "disconnected_at")
    )
    return {"user": row, "profile": profile, "prompt": prompt, "channels": channels}

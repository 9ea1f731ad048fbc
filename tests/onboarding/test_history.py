"""The status history: what the relay records, and GET /api/v1/accounts/wizard-status/history."""

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from onboarding import services
from onboarding.models import WizardStatusHistory
from onboarding.selectors import status_history_latest
from onboarding.status import (
    PROFILE_REQUIREMENTS,
    OnboardingSnapshot,
    WizardStatus,
    compute_wizard_status,
)
from outbox.models import OutboxEvent, Topic
from outbox.relay import outbox_relay
from tests.conftest import json_datetime
from tests.factories import make_user
from tests.outbox.support import poll_until, use_channel_layer

HISTORY = "/api/v1/accounts/wizard-status/history"
COMPUTED_AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture(autouse=True)
def own_channel_layer_prefix(settings) -> Iterator[None]:
    """Relayed statuses go to groups nobody else listens to (pub/sub spans the server)."""
    use_channel_layer(settings, prefix=f"history-test-{uuid.uuid4().hex[:12]}")
    yield


def status_of(user_id: int, version: int, **fields: Any) -> WizardStatus:
    """A status computed from a snapshot with the given fields set (everything else empty)."""
    profile = dict.fromkeys(PROFILE_REQUIREMENTS, "") | {
        name: value for name, value in fields.items() if name in PROFILE_REQUIREMENTS
    }
    snapshot = {
        "has_manual_prompt": False,
        "instagram_connected": False,
        "telegram_connected": False,
        "wizard_completed_at": None,
    } | {name: value for name, value in fields.items() if name not in PROFILE_REQUIREMENTS}
    return compute_wizard_status(
        OnboardingSnapshot(user_id=user_id, version=version, profile=profile, **snapshot),
        computed_at=COMPUTED_AT,
    )


def change(status: WizardStatus, *causes: str) -> services.StatusChange:
    return services.StatusChange(
        status=status,
        causes=list(causes) or [Topic.PROFILE_UPDATED],
        actors=[{"kind": "user", "id": status.user_id}],
        occurred_at=COMPUTED_AT - timedelta(seconds=1),
    )


def entries(user) -> list[tuple[int, list[str], list[str]]]:
    return list(
        WizardStatusHistory.objects.filter(user=user)
        .order_by("-version")
        .values_list("version", "changed", "causes")
    )


def make_history(user, version: int, *, causes: list[str] | None = None) -> WizardStatusHistory:
    occurred_at = timezone.now() - timedelta(minutes=10 - version)
    return WizardStatusHistory.objects.create(
        user=user,
        version=version,
        status=status_of(user.pk, version, first_name="x" * version).as_message(),
        changed=["first_name"],
        causes=causes or [Topic.PROFILE_UPDATED],
        actors=[{"kind": "user", "id": user.pk}],
        occurred_at=occurred_at,
        recorded_at=occurred_at + timedelta(milliseconds=5),
    )


def entry_body(entry: WizardStatusHistory) -> dict[str, Any]:
    return {
        "version": entry.version,
        "status": entry.status,
        "changed": entry.changed,
        "causes": entry.causes,
        "actors": entry.actors,
        "occurred_at": json_datetime(entry.occurred_at),
        "recorded_at": json_datetime(entry.recorded_at),
    }


# Recording.


@pytest.mark.django_db
def test_first_status_is_recorded_against_an_empty_wizard(user):
    status = status_of(user.pk, 2, first_name="Ada", telegram_connected=True)

    pushed = services.wizard_status_history_record(
        changes=[change(status, Topic.CHANNEL_CONNECTED, Topic.PROFILE_UPDATED)]
    )

    assert pushed == [status]
    [entry] = WizardStatusHistory.objects.filter(user=user)
    assert entry.version == 2
    assert entry.status == status.as_message()
    assert entry.changed == ["first_name", "channel_connected", "telegram_connected"]
    assert entry.causes == [Topic.CHANNEL_CONNECTED, Topic.PROFILE_UPDATED]
    assert entry.occurred_at == COMPUTED_AT - timedelta(seconds=1)


@pytest.mark.django_db
def test_a_status_equal_to_the_empty_wizard_is_neither_recorded_nor_pushed(user):
    pushed = services.wizard_status_history_record(changes=[change(status_of(user.pk, 1))])

    assert pushed == []
    assert entries(user) == []


@pytest.mark.django_db
def test_each_status_is_compared_with_the_newest_entry(user):
    services.wizard_status_history_record(changes=[change(status_of(user.pk, 1, first_name="A"))])

    # Another value, the same status: nothing to record or push.
    same = status_of(user.pk, 2, first_name="B")
    assert services.wizard_status_history_record(changes=[change(same)]) == []

    completed = status_of(
        user.pk,
        3,
        first_name="A",
        last_name="L",
        phone_number="+14155552671",
        business_type="retail",
        has_manual_prompt=True,
        instagram_connected=True,
        wizard_completed_at=COMPUTED_AT,
    )
    assert services.wizard_status_history_record(changes=[change(completed)]) == [completed]

    cleared = status_of(
        user.pk,
        4,
        first_name="A",
        last_name="L",
        phone_number="+14155552671",
        business_type="retail",
        has_manual_prompt=True,
        wizard_completed_at=COMPUTED_AT,
    )
    assert services.wizard_status_history_record(
        changes=[change(cleared, Topic.CHANNEL_DISCONNECTED)]
    ) == [cleared]

    assert entries(user) == [
        (4, ["channel_connected", "instagram_connected"], [Topic.CHANNEL_DISCONNECTED]),
        (
            3,
            [
                "last_name",
                "phone_number",
                "business_type",
                "manual_prompt",
                "channel_connected",
                "instagram_connected",
                "wizard_complete",
            ],
            [Topic.PROFILE_UPDATED],
        ),
        (1, ["first_name"], [Topic.PROFILE_UPDATED]),
    ]


@pytest.mark.django_db
def test_recording_is_deterministic_per_version(user):
    """A relay retrying after a crash decides as the first attempt did."""
    recorded = status_of(user.pk, 5, first_name="Ada")
    services.wizard_status_history_record(changes=[change(recorded)])
    [before] = WizardStatusHistory.objects.filter(user=user).values()

    # The same version again: pushed again, not recorded again.
    retried = status_of(user.pk, 5, first_name="Ada")
    assert services.wizard_status_history_record(
        changes=[change(retried, Topic.MANUAL_PROMPT_SAVED)]
    ) == [retried]
    # An older version than the newest entry: neither recorded nor pushed, even if it differs.
    older = status_of(user.pk, 4, last_name="Lovelace")
    assert services.wizard_status_history_record(changes=[change(older)]) == []

    assert list(WizardStatusHistory.objects.filter(user=user).values()) == [before]


@pytest.mark.django_db
def test_many_users_are_decided_in_one_read_and_one_write(django_assert_num_queries):
    fresh, unchanged, repeated = make_user(), make_user(), make_user()
    services.wizard_status_history_record(
        changes=[
            change(status_of(unchanged.pk, 1, first_name="A")),
            change(status_of(repeated.pk, 1, last_name="B")),
        ]
    )
    fresh_status = status_of(fresh.pk, 3, phone_number="+14155552671")
    unchanged_status = status_of(unchanged.pk, 2, first_name="Z")
    repeated_status = status_of(repeated.pk, 1, last_name="B")

    with django_assert_num_queries(2):
        pushed = services.wizard_status_history_record(
            changes=[change(fresh_status), change(unchanged_status), change(repeated_status)]
        )

    assert pushed == [fresh_status, repeated_status]
    assert entries(fresh) == [(3, ["phone_number"], [Topic.PROFILE_UPDATED])]
    assert [version for version, *_ in entries(unchanged)] == [1]
    assert [version for version, *_ in entries(repeated)] == [1]
    latest = status_history_latest(user_ids=[fresh.pk, unchanged.pk, repeated.pk, 10**9])
    assert {user_id: entry.version for user_id, entry in latest.items()} == {
        fresh.pk: 3,
        unchanged.pk: 1,
        repeated.pk: 1,
    }


@pytest.mark.django_db(transaction=True)
def test_two_relays_recording_one_version_at_once_both_push_it_and_the_first_wins():
    user = make_user()
    status = status_of(user.pk, 1, first_name="Ada")
    first_inserted, first_may_commit = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    pids: dict[str, int] = {}

    def first_relay() -> None:
        try:
            with transaction.atomic():
                outcome["first"] = services.wizard_status_history_record(
                    changes=[change(status, Topic.PROFILE_UPDATED)]
                )
                first_inserted.set()
                assert first_may_commit.wait(timeout=30)
        finally:
            connection.close()

    def second_relay() -> None:
        try:
            connection.ensure_connection()
            pids["second"] = connection.connection.info.backend_pid
            outcome["second"] = services.wizard_status_history_record(
                changes=[change(status, Topic.MANUAL_PROMPT_SAVED)]
            )
        finally:
            connection.close()

    first = threading.Thread(target=first_relay)
    first.start()
    try:
        assert first_inserted.wait(timeout=10)
        second = threading.Thread(target=second_relay)
        second.start()

        def second_waits_on_the_first() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    [pids.get("second", 0)],
                )
                row = cursor.fetchone()
            return row is not None and row[0] == "Lock"

        poll_until(second_waits_on_the_first)
    finally:
        first_may_commit.set()
        first.join(timeout=30)
    second.join(timeout=30)

    assert outcome == {"first": [status], "second": [status]}
    assert entries(user) == [(1, ["first_name"], [Topic.PROFILE_UPDATED])]


# GET /api/v1/accounts/wizard-status/history


@pytest.mark.django_db
def test_history_lists_each_relayed_status_change_newest_first(api, user):
    services.profile_update(user_id=user.pk, first_name="Ada")
    first_row = OutboxEvent.objects.get(user=user)
    outbox_relay()
    services.manual_prompt_save(user_id=user.pk, content="Be kind.")
    services.profile_update(user_id=user.pk, last_name="Lovelace")
    second_row = OutboxEvent.objects.get(user=user, version=2)
    outbox_relay()
    services.profile_update(user_id=user.pk, first_name="Grace")  # same status: no entry
    outbox_relay()

    response = api.get(HISTORY)

    assert response.status_code == 200
    newest, oldest = WizardStatusHistory.objects.filter(user=user).order_by("-version")
    assert response.json() == {
        "items": [entry_body(newest), entry_body(oldest)],
        "next_before_version": None,
    }
    body = response.json()["items"]
    assert [item["version"] for item in body] == [3, 1]
    assert body[0]["changed"] == ["last_name", "manual_prompt"]
    assert body[0]["causes"] == [Topic.MANUAL_PROMPT_SAVED, Topic.PROFILE_UPDATED]
    assert body[0]["actors"] == [{"kind": "user", "id": user.pk}]
    assert body[0]["occurred_at"] == json_datetime(second_row.created_at)
    assert body[0]["status"]["version"] == 3
    assert body[0]["status"]["details"]["manual_prompt"] is True
    assert body[1]["changed"] == ["first_name"]
    assert body[1]["occurred_at"] == json_datetime(first_row.created_at)


@pytest.mark.django_db
def test_history_pages_with_limit_and_before_version(api, user, other_user):
    mine = {version: make_history(user, version) for version in (1, 2, 3, 5, 8)}
    for version in (4, 6, 7, 9):
        make_history(other_user, version)

    def page(query: str) -> dict:
        response = api.get(f"{HISTORY}?{query}")
        assert response.status_code == 200
        return response.json()

    def bodies(*versions: int) -> list[dict]:
        return [entry_body(mine[version]) for version in versions]

    assert page("limit=2") == {"items": bodies(8, 5), "next_before_version": 5}
    assert page("limit=2&before_version=5") == {"items": bodies(3, 2), "next_before_version": 2}
    assert page("limit=2&before_version=2") == {"items": bodies(1), "next_before_version": None}
    # Exactly `limit` left: the listing ends there.
    assert page("limit=3&before_version=5") == {
        "items": bodies(3, 2, 1),
        "next_before_version": None,
    }
    assert page("limit=5") == {"items": bodies(8, 5, 3, 2, 1), "next_before_version": None}
    assert page("") == {"items": bodies(8, 5, 3, 2, 1), "next_before_version": None}
    assert page("before_version=7") == {"items": bodies(5, 3, 2, 1), "next_before_version": None}
    assert page("before_version=1") == {"items": [], "next_before_version": None}
    assert page("limit=200&before_version=1000") == {
        "items": bodies(8, 5, 3, 2, 1),
        "next_before_version": None,
    }


@pytest.mark.django_db
def test_history_shows_only_the_callers_entries(api, other_api, user, other_user):
    make_history(user, 1)
    theirs = make_history(other_user, 2)

    response = other_api.get(HISTORY)

    assert response.status_code == 200
    assert response.json() == {"items": [entry_body(theirs)], "next_before_version": None}


@pytest.mark.django_db
def test_history_of_a_new_user_is_empty(api):
    response = api.get(HISTORY)

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_before_version": None}


@pytest.mark.django_db
def test_history_needs_authentication(anonymous, user):
    make_history(user, 1)

    response = anonymous.get(HISTORY)

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=201", "limit"),
        ("limit=1000", "limit"),
        ("limit=abc", "limit"),
        ("before_version=-1", "before_version"),
        ("before_version=0", "before_version"),
        ("before_version=abc", "before_version"),
        (f"before_version={2**63}", "before_version"),
    ],
)
def test_history_rejects_bad_paging(api, user, query, field):
    make_history(user, 1)

    response = api.get(f"{HISTORY}?{query}")

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", field]

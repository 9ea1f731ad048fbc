import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from onboarding.selectors import wizard_status_get
from onboarding.status import REQUIREMENTS, OnboardingSnapshot, compute_wizard_status
from tests.factories import make_complete_user, make_user, profile_of

COMPUTED_AT = datetime(2025, 10, 22, 12, 34, 56, 789000, tzinfo=UTC)


def snapshot(*, met: dict[str, bool], channels=(False, False), completed=False):
    return OnboardingSnapshot(
        user_id=1,
        version=17,
        profile={
            "first_name": "Ada" if met["first_name"] else "  ",
            "last_name": "Lovelace" if met["last_name"] else "",
            "phone_number": "+14155552671" if met["phone_number"] else "",
            "business_type": "retail" if met["business_type"] else "",
        },
        has_manual_prompt=met["manual_prompt"],
        instagram_connected=channels[0],
        telegram_connected=channels[1],
        wizard_completed_at=COMPUTED_AT if completed else None,
    )


CHANNEL_COMBINATIONS = [(False, False), (True, False), (False, True), (True, True)]
FIVE = REQUIREMENTS[:5]


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=5)))
@pytest.mark.parametrize("channels", CHANNEL_COMBINATIONS)
@pytest.mark.parametrize("completed", [False, True])
def test_every_combination_of_requirements(flags, channels, completed):
    met = dict(zip(FIVE, flags, strict=True))
    status = compute_wizard_status(
        snapshot(met=met, channels=channels, completed=completed), computed_at=COMPUTED_AT
    )
    message = status.as_message()

    channel_connected = channels[0] or channels[1]
    expected_details = {
        **met,
        "channel_connected": channel_connected,
        "instagram_connected": channels[0],
        "telegram_connected": channels[1],
    }
    expected_missing = [name for name in REQUIREMENTS if not expected_details[name]]
    completed_count = 6 - len(expected_missing)
    assert message == {
        "type": "wizard_status",
        "wizard_complete": completed,
        "can_complete": expected_missing == [],
        "missing_fields": expected_missing,
        "details": expected_details,
        "progress": {
            "completed": completed_count,
            "total": 6,
            "percent": round(100 * completed_count / 6),
        },
        "version": 17,
        "timestamp": "2025-10-22T12:34:56.789Z",
    }
    assert list(message["details"])[:6] == list(REQUIREMENTS)


@pytest.mark.parametrize(
    ("completed", "percent"), [(0, 0), (1, 17), (2, 33), (3, 50), (4, 67), (5, 83), (6, 100)]
)
def test_progress_percent_is_rounded_over_the_six_requirements(completed, percent):
    met = {name: index < completed for index, name in enumerate(REQUIREMENTS)}
    channels = (met["channel_connected"], False)
    status = compute_wizard_status(snapshot(met=met, channels=channels), computed_at=COMPUTED_AT)
    assert status.as_message()["progress"] == {
        "completed": completed,
        "total": 6,
        "percent": percent,
    }


def test_wizard_complete_stays_true_after_a_requirement_is_lost():
    met = dict.fromkeys(FIVE, False)
    status = compute_wizard_status(snapshot(met=met, completed=True), computed_at=COMPUTED_AT)
    assert status.wizard_complete is True
    assert status.can_complete is False
    assert status.missing_fields == list(REQUIREMENTS)


def test_unknown_business_type_in_the_database_is_not_met():
    met = dict.fromkeys(FIVE, True)
    current = snapshot(met=met, channels=(True, False))
    legacy = replace(current, profile={**current.profile, "business_type": "retired_choice"})
    status = compute_wizard_status(legacy, computed_at=COMPUTED_AT)
    assert status.missing_fields == ["business_type"]


def test_timestamp_is_utc_with_milliseconds_and_z():
    met = dict.fromkeys(FIVE, True)
    moment = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert (
        compute_wizard_status(snapshot(met=met), computed_at=moment).as_message()["timestamp"]
        == "2026-01-02T03:04:05.006Z"
    )


@pytest.mark.django_db
def test_status_is_read_from_the_database():
    user = make_complete_user()
    status = wizard_status_get(user_id=user.pk)
    assert status.missing_fields == []
    assert status.details["instagram_connected"] is True
    assert status.details["telegram_connected"] is False
    assert status.version == profile_of(user).version


@pytest.mark.django_db
def test_blank_prompt_and_disconnected_channel_do_not_count(django_assert_num_queries):
    from django.utils import timezone

    from onboarding.models import Channel, ManualPrompt

    user = make_user(first_name="A", last_name="B")
    ManualPrompt.objects.create(user=user, content="", updated_at=timezone.now())
    Channel.objects.create(
        user=user,
        platform="telegram",
        external_id="t1",
        connected_at=timezone.now(),
        disconnected_at=timezone.now(),
    )
    with django_assert_num_queries(1):
        status = wizard_status_get(user_id=user.pk)
    assert status.missing_fields == [
        "phone_number",
        "business_type",
        "manual_prompt",
        "channel_connected",
    ]

"""REST profile, business types, wizard status and wizard completion."""

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from onboarding.models import ManualPrompt, User
from tests.conftest import bearer_client, json_datetime, onboarding_data_of, outbox_rows
from tests.factories import make_complete_user, make_user, profile_of

ME = "/api/v1/accounts/me"
BUSINESS_TYPES = "/api/v1/accounts/business-types"
STATUS = "/api/v1/accounts/wizard-status"
COMPLETE = "/api/v1/accounts/wizard-complete"

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PHONE_MESSAGE = "Enter a valid phone number in international format, e.g. +14155552671."
BUSINESS_TYPE_VALUES = (
    "'ecommerce', 'retail', 'restaurant', 'beauty', 'healthcare', 'education', "
    "'real_estate', 'travel', 'fitness', 'professional_services' or 'other'"
)


def patch_me(client, body):
    return client.patch(ME, body, content_type="application/json")


def profile(user: User) -> dict:
    user.refresh_from_db()
    onboarding = profile_of(user)
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": onboarding.first_name,
        "last_name": onboarding.last_name,
        "phone_number": onboarding.phone_number,
        "business_type": onboarding.business_type,
        "wizard_completed_at": (
            json_datetime(onboarding.wizard_completed_at)
            if onboarding.wizard_completed_at
            else None
        ),
    }


def parse_timestamp(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_fresh_timestamp(value: str, *, after: datetime) -> None:
    """An ISO 8601 UTC timestamp with milliseconds and Z, taken during the request."""
    moment = parse_timestamp(value)
    assert after.replace(microsecond=after.microsecond // 1000 * 1000) <= moment
    assert moment <= timezone.now()


# --- GET /accounts/me ---------------------------------------------------------------------


def test_me_answers_the_profile(db):
    user = make_user(
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        phone_number="+14155552671",
        business_type="education",
    )

    response = bearer_client(user).get(ME)

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone_number": "+14155552671",
        "business_type": "education",
        "wizard_completed_at": None,
    }


def test_me_renders_the_completion_time(db):
    completed_at = datetime(2025, 10, 22, 12, 34, 56, 789123, tzinfo=UTC)
    user = make_user(wizard_completed_at=completed_at)

    response = bearer_client(user).get(ME)

    assert response.json()["wizard_completed_at"] == "2025-10-22T12:34:56.789Z"


# --- PATCH /accounts/me -------------------------------------------------------------------


def test_patch_sets_every_field_in_one_change(user, api):
    response = patch_me(
        api,
        {
            "first_name": "  Grace ",
            "last_name": "Hopper",
            "phone_number": "+1 415-555-2671",
            "business_type": "professional_services",
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "email": "",
        "first_name": "Grace",
        "last_name": "Hopper",
        "phone_number": "+14155552671",
        "business_type": "professional_services",
        "wizard_completed_at": None,
    }
    assert response.json() == profile(user)
    assert profile_of(user).version == 1
    fields = ["first_name", "last_name", "phone_number", "business_type"]
    assert outbox_rows() == [(user.pk, "onboarding.profile_updated", 1, {"fields": fields})]


def test_patch_changes_only_the_fields_sent(db):
    user = make_complete_user()
    client = bearer_client(user)

    response = patch_me(client, {"last_name": "Byron"})

    assert response.status_code == 200
    assert response.json() == profile(user)
    onboarding = profile_of(user)
    assert (
        onboarding.first_name,
        onboarding.last_name,
        onboarding.phone_number,
        onboarding.business_type,
    ) == (
        "Ada",
        "Byron",
        "+14155552671",
        "retail",
    )
    assert outbox_rows() == [(user.pk, "onboarding.profile_updated", 1, {"fields": ["last_name"]})]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 415-555-2671", "+14155552671"),
        ("+14155552671", "+14155552671"),
        ("  +1 (415) 555-2671  ", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
        ("+33 1 42 68 53 00", "+33142685300"),
        ("+972 3-123-4567", "+97231234567"),
        ("+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0662\u0666\u0667\u0661", "+14155552671"),
        (
            "\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11",
            "+14155552671",
        ),
    ],
)
def test_patch_normalises_the_phone_number_to_e164(user, api, raw, e164):
    response = patch_me(api, {"phone_number": raw})

    assert response.status_code == 200
    assert response.json()["phone_number"] == e164
    assert profile(user)["phone_number"] == e164


@pytest.mark.parametrize(
    "raw",
    [
        "4155552671",  # no country code, and the service has no default region
        "+1 555",
        "+1 415 555 267",
        "+999 123",
        "phone",
        "+",
        "+1 415 555 2671 ext. 1234567890123456789012345678901234567890123",
    ],
)
def test_patch_rejects_an_invalid_phone_number_with_422(db, raw):
    user = make_complete_user()
    before = onboarding_data_of(user)

    response = patch_me(bearer_client(user), {"phone_number": raw})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "payload", "phone_number"],
                "msg": PHONE_MESSAGE,
            }
        ]
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


@pytest.mark.parametrize("field", ["first_name", "last_name", "phone_number", "business_type"])
@pytest.mark.parametrize("blank", ["", None], ids=["empty", "null"])
def test_patch_with_empty_or_null_clears_the_field(db, field, blank):
    user = make_complete_user()

    response = patch_me(bearer_client(user), {field: blank})

    assert response.status_code == 200
    assert response.json()[field] == ""
    assert response.json() == profile(user)
    assert getattr(profile_of(user), field) == ""
    assert outbox_rows() == [(user.pk, "onboarding.profile_updated", 1, {"fields": [field]})]


@pytest.mark.parametrize("field", ["first_name", "last_name", "phone_number"])
def test_patch_with_whitespace_only_clears_the_field(db, field):
    user = make_complete_user()

    response = patch_me(bearer_client(user), {field: " \u00a0 \u3000 "})

    assert response.status_code == 200
    assert response.json()[field] == ""
    assert getattr(profile_of(user), field) == ""


def test_patch_with_nothing_or_the_same_values_writes_nothing(db):
    user = make_complete_user()
    client = bearer_client(user)
    before = onboarding_data_of(user)

    for body in ({}, {"first_name": "Ada"}, {"first_name": " Ada ", "business_type": "retail"}):
        response = patch_me(client, body)
        assert response.status_code == 200
        assert response.json() == profile(user)

    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_every_change_bumps_the_version_once(user, api):
    patch_me(api, {"first_name": "Grace"})
    patch_me(api, {"first_name": "Grace"})
    patch_me(api, {"business_type": "travel"})

    assert outbox_rows() == [
        (user.pk, "onboarding.profile_updated", 1, {"fields": ["first_name"]}),
        (user.pk, "onboarding.profile_updated", 2, {"fields": ["business_type"]}),
    ]
    assert profile_of(user).version == 2


@pytest.mark.parametrize("value", ["bakery", "RETAIL", "Retail", " retail", "E-commerce", "other "])
def test_patch_rejects_an_unknown_business_type_with_422(db, value):
    user = make_complete_user()
    before = onboarding_data_of(user)

    response = patch_me(bearer_client(user), {"business_type": value})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "enum",
                "loc": ["body", "payload", "business_type", "str-enum[BusinessType]"],
                "msg": f"Input should be {BUSINESS_TYPE_VALUES}",
                "ctx": {"expected": BUSINESS_TYPE_VALUES},
            },
            {
                "type": "literal_error",
                "loc": ["body", "payload", "business_type", "literal['']"],
                "msg": "Input should be ''",
                "ctx": {"expected": "''"},
            },
        ]
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


@pytest.mark.parametrize(
    "key",
    [
        "username",
        "email",
        "password",
        "is_staff",
        "is_superuser",
        "is_active",
        "wizard_completed_at",
        "onboarding_version",
        "id",
        "firstName",
        "First_name",
    ],
)
def test_patch_rejects_an_unknown_key_with_422(db, key):
    user = make_complete_user()
    before = onboarding_data_of(user)

    response = patch_me(bearer_client(user), {"first_name": "Grace", key: "x"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "payload", key],
                "msg": "Extra inputs are not permitted",
            }
        ]
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_a_patch_never_touches_another_user(user, api):
    other = make_complete_user()
    before = onboarding_data_of(other)

    response = patch_me(api, {"first_name": "Mallory", "phone_number": None})

    assert response.json()["id"] == user.pk
    assert onboarding_data_of(other) == before
    assert [row[0] for row in outbox_rows()] == [user.pk]


def test_each_user_reads_only_their_own_profile(user, other_user, api, other_api):
    assert api.get(ME).json() == profile(user)
    assert other_api.get(ME).json() == profile(other_user)


# --- GET /accounts/business-types ---------------------------------------------------------


def test_business_types_lists_every_choice_in_order(api):
    response = api.get(BUSINESS_TYPES)

    assert response.status_code == 200
    assert response.json() == [
        {"value": "ecommerce", "label": "E-commerce"},
        {"value": "retail", "label": "Retail store"},
        {"value": "restaurant", "label": "Restaurant or cafe"},
        {"value": "beauty", "label": "Beauty and wellness"},
        {"value": "healthcare", "label": "Healthcare"},
        {"value": "education", "label": "Education"},
        {"value": "real_estate", "label": "Real estate"},
        {"value": "travel", "label": "Travel and hospitality"},
        {"value": "fitness", "label": "Fitness and sports"},
        {"value": "professional_services", "label": "Professional services"},
        {"value": "other", "label": "Other"},
    ]


@pytest.mark.parametrize(
    "value",
    [
        "ecommerce",
        "retail",
        "restaurant",
        "beauty",
        "healthcare",
        "education",
        "real_estate",
        "travel",
        "fitness",
        "professional_services",
        "other",
    ],
)
def test_every_listed_business_type_is_accepted(user, api, value):
    response = patch_me(api, {"business_type": value})

    assert response.status_code == 200
    assert profile(user)["business_type"] == value


# --- GET /accounts/wizard-status ----------------------------------------------------------


def test_wizard_status_of_a_new_user(user, api):
    started = timezone.now()

    response = api.get(STATUS)

    assert response.status_code == 200
    body = response.json()
    assert_fresh_timestamp(body.pop("timestamp"), after=started)
    assert body == {
        "type": "wizard_status",
        "wizard_complete": False,
        "can_complete": False,
        "missing_fields": [
            "first_name",
            "last_name",
            "phone_number",
            "business_type",
            "manual_prompt",
            "channel_connected",
        ],
        "details": {
            "first_name": False,
            "last_name": False,
            "phone_number": False,
            "business_type": False,
            "manual_prompt": False,
            "channel_connected": False,
            "instagram_connected": False,
            "telegram_connected": False,
        },
        "progress": {"completed": 0, "total": 6, "percent": 0},
        "version": 0,
    }


def test_wizard_status_follows_writes_through_the_api(user, api):
    patch_me(api, {"first_name": "Grace", "last_name": "Hopper", "business_type": "other"})
    api.put("/api/v1/ai-prompts/manual", {"content": "Hi"}, content_type="application/json")
    api.post(
        "/api/v1/channels",
        {"platform": "telegram", "external_id": "tg-1"},
        content_type="application/json",
    )
    started = timezone.now()

    response = api.get(STATUS)

    body = response.json()
    assert_fresh_timestamp(body.pop("timestamp"), after=started)
    assert body == {
        "type": "wizard_status",
        "wizard_complete": False,
        "can_complete": False,
        "missing_fields": ["phone_number"],
        "details": {
            "first_name": True,
            "last_name": True,
            "phone_number": False,
            "business_type": True,
            "manual_prompt": True,
            "channel_connected": True,
            "instagram_connected": False,
            "telegram_connected": True,
        },
        "progress": {"completed": 5, "total": 6, "percent": 83},
        "version": 3,
    }


def test_wizard_status_is_per_user(user, api, other_api):
    make_complete_user()
    patch_me(other_api, {"first_name": "Other"})

    body = api.get(STATUS).json()

    assert (body["version"], body["missing_fields"][0], body["progress"]["completed"]) == (
        0,
        "first_name",
        0,
    )


# --- PATCH /accounts/wizard-complete ------------------------------------------------------


def test_wizard_complete_with_unmet_requirements_is_400(user, api):
    response = api.patch(COMPLETE)

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "code": "wizard_incomplete",
        "detail": "Complete every requirement first.",
        "missing_fields": [
            "first_name",
            "last_name",
            "phone_number",
            "business_type",
            "manual_prompt",
            "channel_connected",
        ],
    }
    onboarding = profile_of(user)
    assert (onboarding.wizard_completed_at, onboarding.version) == (None, 0)
    assert outbox_rows() == []


def test_wizard_complete_names_exactly_the_missing_requirements(db):
    user = make_complete_user(phone_number="")
    ManualPrompt.objects.filter(user=user).update(content="")
    before = onboarding_data_of(user)

    response = bearer_client(user).patch(COMPLETE)

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "code": "wizard_incomplete",
        "detail": "Complete every requirement first.",
        "missing_fields": ["phone_number", "manual_prompt"],
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_wizard_complete_marks_the_wizard_complete_once(db):
    user = make_complete_user()
    client = bearer_client(user)
    started = timezone.now()

    first = client.patch(COMPLETE)

    assert first.status_code == 200
    completed_at_stored = profile_of(user).wizard_completed_at
    completed_at = json_datetime(completed_at_stored)
    body = first.json()
    assert_fresh_timestamp(body["status"].pop("timestamp"), after=started)
    assert body == {
        "success": True,
        "wizard_complete": True,
        "completed_at": completed_at,
        "status": {
            "type": "wizard_status",
            "wizard_complete": True,
            "can_complete": True,
            "missing_fields": [],
            "details": {
                "first_name": True,
                "last_name": True,
                "phone_number": True,
                "business_type": True,
                "manual_prompt": True,
                "channel_connected": True,
                "instagram_connected": True,
                "telegram_connected": False,
            },
            "progress": {"completed": 6, "total": 6, "percent": 100},
            "version": 1,
        },
    }
    assert started <= completed_at_stored <= timezone.now()
    assert outbox_rows() == [(user.pk, "onboarding.wizard_completed", 1, {})]
    assert client.get(ME).json()["wizard_completed_at"] == completed_at

    second = client.patch(COMPLETE)

    assert second.status_code == 200
    again = second.json()
    again["status"].pop("timestamp")
    assert again == body
    assert outbox_rows() == [(user.pk, "onboarding.wizard_completed", 1, {})]
    assert profile_of(user).version == 1


def test_a_completed_wizard_stays_complete_when_a_requirement_is_removed(db):
    user = make_complete_user()
    client = bearer_client(user)
    completed_at = client.patch(COMPLETE).json()["completed_at"]

    patch_me(client, {"first_name": ""})
    response = client.patch(COMPLETE)

    assert response.status_code == 200
    body = response.json()
    assert (body["completed_at"], body["status"]["wizard_complete"]) == (completed_at, True)
    assert (body["status"]["missing_fields"], body["status"]["version"]) == (["first_name"], 2)
    assert client.get(STATUS).json()["wizard_complete"] is True
    assert [row[1:3] for row in outbox_rows()] == [
        ("onboarding.wizard_completed", 1),
        ("onboarding.profile_updated", 2),
    ]


def test_wizard_complete_of_one_user_leaves_another_alone(api):
    other = make_complete_user()
    before = onboarding_data_of(other)

    response = api.patch(COMPLETE)

    assert response.status_code == 400
    assert onboarding_data_of(other) == before
    assert outbox_rows() == []

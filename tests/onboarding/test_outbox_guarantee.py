"""Every mutating endpoint: a change writes exactly one outbox row, a no-op writes none.

The row carries the user's onboarding version after the write, which is one more than before.
"""

from datetime import datetime

import pytest

from onboarding import services
from onboarding.models import Channel, ManualPrompt, User
from outbox.models import OutboxEvent, Topic
from tests.conftest import bearer_client
from tests.factories import make_completable_via_services, make_user, profile_of

ME = "/api/v1/accounts/me"
PROMPT = "/api/v1/ai-prompts/manual"
CHANNELS = "/api/v1/channels"
WIZARD_COMPLETE = "/api/v1/accounts/wizard-complete"


class OutboxWatch:
    """Remembers the rows present now, to list exactly the ones added later."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.seen = set(OutboxEvent.objects.values_list("pk", flat=True))
        self.version_before = self.version()

    def version(self) -> int:
        return profile_of(self.user).version

    def new_rows(self) -> list[tuple[int, str, int, dict]]:
        return list(
            OutboxEvent.objects.exclude(pk__in=self.seen)
            .order_by("version")
            .values_list("user_id", "topic", "version", "payload")
        )

    def assert_one_row(self, topic: Topic, payload: dict) -> None:
        after = self.version()
        assert after == self.version_before + 1
        assert self.new_rows() == [(self.user.pk, topic, after, payload)]

    def assert_no_row(self) -> None:
        assert self.new_rows() == []
        assert self.version() == self.version_before


def to_millis(moment: datetime) -> datetime:
    """The API renders datetimes with millisecond precision."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def patch_json(client, path: str, body: dict | None = None):
    return client.patch(path, data=body or {}, content_type="application/json")


def put_json(client, path: str, body: dict):
    return client.put(path, data=body, content_type="application/json")


def post_json(client, path: str, body: dict):
    return client.post(path, data=body, content_type="application/json")


def profile_body(user: User, **fields) -> dict:
    body = {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "phone_number": "",
        "business_type": "",
        "wizard_completed_at": None,
    }
    body.update(fields)
    return body


# PATCH /api/v1/accounts/me


def test_profile_patch_writes_one_row(api, user):
    watch = OutboxWatch(user)

    response = patch_json(api, ME, {"first_name": "Ada"})

    assert response.status_code == 200
    assert response.json() == profile_body(user, first_name="Ada")
    watch.assert_one_row(Topic.PROFILE_UPDATED, {"fields": ["first_name"]})


def test_profile_patch_of_every_field_writes_one_row_listing_them(api, user):
    patch_json(api, ME, {"first_name": "Ada"})
    watch = OutboxWatch(user)
    assert watch.version_before == 1

    response = patch_json(
        api,
        ME,
        {
            "business_type": "retail",
            "phone_number": "+1 (415) 555-2671",
            "last_name": "  Lovelace ",
            "first_name": "Grace",
        },
    )

    assert response.status_code == 200
    assert response.json() == profile_body(
        user,
        first_name="Grace",
        last_name="Lovelace",
        phone_number="+14155552671",
        business_type="retail",
    )
    # Canonical field order, whatever the order of the request body.
    watch.assert_one_row(
        Topic.PROFILE_UPDATED,
        {"fields": ["first_name", "last_name", "phone_number", "business_type"]},
    )


@pytest.mark.parametrize("cleared", [None, ""])
def test_profile_patch_clearing_writes_one_row(api, user, cleared):
    patch_json(api, ME, {"phone_number": "+14155552671", "business_type": "retail"})
    watch = OutboxWatch(user)

    response = patch_json(api, ME, {"phone_number": cleared, "business_type": cleared})

    assert response.status_code == 200
    assert response.json() == profile_body(user)
    watch.assert_one_row(Topic.PROFILE_UPDATED, {"fields": ["phone_number", "business_type"]})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"first_name": "Ada"}, {"first_name": "Ada"}),
        ({"first_name": "Ada"}, {"first_name": "  Ada  "}),
        ({"phone_number": "+14155552671"}, {"phone_number": "+1 415-555-2671"}),
        ({"business_type": "retail"}, {"business_type": "retail"}),
        ({"last_name": "Lovelace"}, {}),
        ({"last_name": ""}, {"last_name": None}),
    ],
)
def test_profile_patch_that_changes_nothing_writes_no_row(api, user, first, second):
    assert patch_json(api, ME, first).status_code == 200
    watch = OutboxWatch(user)

    response = patch_json(api, ME, second)

    assert response.status_code == 200
    watch.assert_no_row()


@pytest.mark.parametrize(
    "body",
    [
        {"phone_number": "12345"},
        {"business_type": "spaceship"},
        {"first_name": "Ada", "phone_number": "+1 555 0000"},
    ],
)
def test_profile_patch_rejected_writes_nothing(api, user, body):
    watch = OutboxWatch(user)

    response = patch_json(api, ME, body)

    assert response.status_code == 422
    watch.assert_no_row()
    onboarding = profile_of(user)
    assert (onboarding.first_name, onboarding.phone_number, onboarding.business_type) == (
        "",
        "",
        "",
    )


# PUT and DELETE /api/v1/ai-prompts/manual


def test_prompt_put_creating_writes_one_row(api, user):
    watch = OutboxWatch(user)

    response = put_json(api, PROMPT, {"content": "  Answer politely.  "})

    assert response.status_code == 200
    prompt = ManualPrompt.objects.get(user=user)
    assert prompt.content == "Answer politely."
    assert response.json()["content"] == "Answer politely."
    assert datetime.fromisoformat(response.json()["updated_at"]) == to_millis(prompt.updated_at)
    watch.assert_one_row(Topic.MANUAL_PROMPT_SAVED, {"blank": False})


def test_prompt_put_changing_writes_one_row(api, user):
    put_json(api, PROMPT, {"content": "Answer politely."})
    watch = OutboxWatch(user)

    response = put_json(api, PROMPT, {"content": ""})

    assert response.status_code == 200
    assert response.json()["content"] == ""
    assert ManualPrompt.objects.get(user=user).content == ""
    watch.assert_one_row(Topic.MANUAL_PROMPT_SAVED, {"blank": True})


@pytest.mark.parametrize("again", ["Answer politely.", "\n Answer politely.\t"])
def test_prompt_put_same_content_writes_no_row(api, user, again):
    put_json(api, PROMPT, {"content": "Answer politely."})
    updated_at = ManualPrompt.objects.get(user=user).updated_at
    watch = OutboxWatch(user)

    response = put_json(api, PROMPT, {"content": again})

    assert response.status_code == 200
    assert ManualPrompt.objects.get(user=user).updated_at == updated_at
    watch.assert_no_row()


def test_prompt_put_too_long_writes_nothing(api, user):
    watch = OutboxWatch(user)

    response = put_json(api, PROMPT, {"content": "x" * 10_001})

    assert response.status_code == 422
    assert not ManualPrompt.objects.filter(user=user).exists()
    watch.assert_no_row()


def test_prompt_delete_writes_one_row(api, user):
    put_json(api, PROMPT, {"content": "Answer politely."})
    watch = OutboxWatch(user)

    response = api.delete(PROMPT)

    assert response.status_code == 204
    assert not ManualPrompt.objects.filter(user=user).exists()
    watch.assert_one_row(Topic.MANUAL_PROMPT_DELETED, {})


def test_prompt_delete_without_prompt_writes_no_row(api, user):
    watch = OutboxWatch(user)

    response = api.delete(PROMPT)

    assert response.status_code == 204
    watch.assert_no_row()


def test_prompt_delete_leaves_other_users_prompt_and_rows_alone(api, user, other_user):
    services.manual_prompt_save(user_id=other_user.pk, content="Theirs.")
    other_watch = OutboxWatch(other_user)
    watch = OutboxWatch(user)

    response = api.delete(PROMPT)

    assert response.status_code == 204
    assert ManualPrompt.objects.get(user=other_user).content == "Theirs."
    watch.assert_no_row()
    other_watch.assert_no_row()


# POST and DELETE /api/v1/channels


def test_channel_post_writes_one_row(api, user):
    watch = OutboxWatch(user)

    response = post_json(
        api, CHANNELS, {"platform": "instagram", "external_id": "ig-1", "name": "Shop"}
    )

    assert response.status_code == 201
    channel = Channel.objects.get(user=user)
    body = response.json()
    assert datetime.fromisoformat(body.pop("connected_at")) == to_millis(channel.connected_at)
    assert body == {
        "id": channel.pk,
        "platform": "instagram",
        "external_id": "ig-1",
        "name": "Shop",
    }
    watch.assert_one_row(
        Topic.CHANNEL_CONNECTED, {"channel_id": channel.pk, "platform": "instagram"}
    )


def test_channel_post_already_connected_writes_no_row(api, user):
    first = post_json(api, CHANNELS, {"platform": "telegram", "external_id": "tg-1"})
    watch = OutboxWatch(user)

    response = post_json(api, CHANNELS, {"platform": "telegram", "external_id": "tg-1"})

    assert response.status_code == 200
    assert response.json() == first.json()
    assert Channel.objects.filter(user=user).count() == 1
    watch.assert_no_row()


def test_channel_post_taken_by_another_user_writes_no_row(api, user, other_user):
    services.channel_connect(user_id=other_user.pk, platform="instagram", external_id="ig-1")
    watch = OutboxWatch(user)
    other_watch = OutboxWatch(other_user)

    response = post_json(api, CHANNELS, {"platform": "instagram", "external_id": "ig-1"})

    assert response.status_code == 409
    assert list(Channel.objects.values_list("user_id", flat=True)) == [other_user.pk]
    watch.assert_no_row()
    other_watch.assert_no_row()


def test_channel_post_invalid_platform_writes_nothing(api, user):
    watch = OutboxWatch(user)

    response = post_json(api, CHANNELS, {"platform": "myspace", "external_id": "x-1"})

    assert response.status_code == 422
    assert not Channel.objects.exists()
    watch.assert_no_row()


def test_channel_delete_writes_one_row(api, user):
    channel_id = post_json(api, CHANNELS, {"platform": "telegram", "external_id": "tg-1"}).json()[
        "id"
    ]
    watch = OutboxWatch(user)

    response = api.delete(f"{CHANNELS}/{channel_id}")

    assert response.status_code == 204
    assert Channel.objects.get(pk=channel_id).disconnected_at is not None
    watch.assert_one_row(
        Topic.CHANNEL_DISCONNECTED, {"channel_id": channel_id, "platform": "telegram"}
    )


def test_channel_delete_twice_writes_one_row(api, user):
    channel_id = post_json(api, CHANNELS, {"platform": "telegram", "external_id": "tg-1"}).json()[
        "id"
    ]
    api.delete(f"{CHANNELS}/{channel_id}")
    watch = OutboxWatch(user)

    response = api.delete(f"{CHANNELS}/{channel_id}")

    assert response.status_code == 404
    watch.assert_no_row()


def test_channel_delete_of_another_users_channel_writes_no_row(api, user, other_user):
    connection = services.channel_connect(
        user_id=other_user.pk, platform="instagram", external_id="ig-9"
    )
    watch = OutboxWatch(user)
    other_watch = OutboxWatch(other_user)

    response = api.delete(f"{CHANNELS}/{connection.channel.pk}")

    assert response.status_code == 404
    assert Channel.objects.get(pk=connection.channel.pk).disconnected_at is None
    watch.assert_no_row()
    other_watch.assert_no_row()


# PATCH /api/v1/accounts/wizard-complete


def test_wizard_complete_writes_one_row(api, user):
    make_completable_via_services(user)
    watch = OutboxWatch(user)
    assert watch.version_before == 3

    response = patch_json(api, WIZARD_COMPLETE)

    assert response.status_code == 200
    body = response.json()
    completed_at = profile_of(user).wizard_completed_at
    assert datetime.fromisoformat(body["completed_at"]) == to_millis(completed_at)
    assert (body["success"], body["wizard_complete"]) == (True, True)
    assert body["status"]["version"] == 4
    assert body["status"]["wizard_complete"] is True
    watch.assert_one_row(Topic.WIZARD_COMPLETED, {})


def test_wizard_complete_again_writes_no_row(api, user):
    make_completable_via_services(user)
    first = patch_json(api, WIZARD_COMPLETE).json()
    watch = OutboxWatch(user)

    response = patch_json(api, WIZARD_COMPLETE)

    assert response.status_code == 200
    assert response.json()["completed_at"] == first["completed_at"]
    assert response.json()["status"]["version"] == first["status"]["version"]
    watch.assert_no_row()


def test_wizard_complete_unmet_writes_no_row(api, user):
    services.profile_update(user_id=user.pk, first_name="Ada")
    watch = OutboxWatch(user)

    response = patch_json(api, WIZARD_COMPLETE)

    assert response.status_code == 400
    assert response.json()["missing_fields"] == [
        "last_name",
        "phone_number",
        "business_type",
        "manual_prompt",
        "channel_connected",
    ]
    assert profile_of(user).wizard_completed_at is None
    watch.assert_no_row()


def test_rows_of_a_session_of_writes_have_consecutive_versions(api, user):
    """Across endpoints, one user's rows carry versions 1..n in the order of the writes."""
    patch_json(api, ME, {"first_name": "Ada", "last_name": "Lovelace"})
    put_json(api, PROMPT, {"content": "Be kind."})
    channel_id = post_json(api, CHANNELS, {"platform": "instagram", "external_id": "ig-1"}).json()[
        "id"
    ]
    patch_json(api, ME, {"phone_number": "+14155552671", "business_type": "retail"})
    patch_json(api, WIZARD_COMPLETE)
    api.delete(f"{CHANNELS}/{channel_id}")
    api.delete(PROMPT)
    other = make_user()
    bearer_client(other).patch(ME, data={"first_name": "Bob"}, content_type="application/json")

    assert list(
        OutboxEvent.objects.filter(user=user).order_by("id").values_list("version", "topic")
    ) == [
        (1, Topic.PROFILE_UPDATED),
        (2, Topic.MANUAL_PROMPT_SAVED),
        (3, Topic.CHANNEL_CONNECTED),
        (4, Topic.PROFILE_UPDATED),
        (5, Topic.WIZARD_COMPLETED),
        (6, Topic.CHANNEL_DISCONNECTED),
        (7, Topic.MANUAL_PROMPT_DELETED),
    ]
    assert list(OutboxEvent.objects.filter(user=other).values_list("version", "topic")) == [
        (1, Topic.PROFILE_UPDATED)
    ]
    assert profile_of(user).version == 7

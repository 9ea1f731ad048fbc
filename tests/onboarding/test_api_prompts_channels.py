"""REST manual prompt and channels, and that one user never reaches another's."""

import pytest
from django.utils import timezone

from onboarding.models import Channel, ManualPrompt
from tests.conftest import bearer_client, json_datetime, onboarding_data_of, outbox_rows
from tests.factories import make_complete_user, make_user

PROMPT = "/api/v1/ai-prompts/manual"
CHANNELS = "/api/v1/channels"

SAVED = "onboarding.manual_prompt_saved"
DELETED = "onboarding.manual_prompt_deleted"
CONNECTED = "onboarding.channel_connected"
DISCONNECTED = "onboarding.channel_disconnected"


def put_prompt(client, content):
    return client.put(PROMPT, {"content": content}, content_type="application/json")


def connect(client, **body):
    return client.post(CHANNELS, body, content_type="application/json")


def channel_json(channel: Channel) -> dict:
    channel.refresh_from_db()
    return {
        "id": channel.pk,
        "platform": channel.platform,
        "external_id": channel.external_id,
        "name": channel.name,
        "connected_at": json_datetime(channel.connected_at),
    }


def make_channel(user, platform="instagram", external_id=None, **fields) -> Channel:
    return Channel.objects.create(
        user=user,
        platform=platform,
        external_id=external_id or f"{platform}-{user.pk}-{Channel.objects.count()}",
        connected_at=timezone.now(),
        **fields,
    )


# --- manual prompt ------------------------------------------------------------------------


def test_get_prompt_when_none_was_saved(api):
    response = api.get(PROMPT)

    assert response.status_code == 200
    assert response.json() == {"content": "", "updated_at": None}


def test_put_prompt_saves_it(user, api):
    started = timezone.now()

    response = put_prompt(api, "  Answer in French.\n\tBe brief.  \n")

    assert response.status_code == 200
    prompt = ManualPrompt.objects.get(user=user)
    assert prompt.content == "Answer in French.\n\tBe brief."
    assert started <= prompt.updated_at <= timezone.now()
    assert response.json() == {
        "content": "Answer in French.\n\tBe brief.",
        "updated_at": json_datetime(prompt.updated_at),
    }
    assert api.get(PROMPT).json() == response.json()
    assert outbox_rows() == [(user.pk, SAVED, 1, {"blank": False})]


def test_put_prompt_replaces_the_saved_one(user, api):
    put_prompt(api, "One.")
    first = ManualPrompt.objects.get(user=user)

    response = put_prompt(api, "Two.")

    assert response.status_code == 200
    prompt = ManualPrompt.objects.get(user=user)
    assert response.json() == {"content": "Two.", "updated_at": json_datetime(prompt.updated_at)}
    assert (prompt.pk, ManualPrompt.objects.count()) == (first.pk, 1)
    assert prompt.updated_at > first.updated_at
    assert outbox_rows() == [
        (user.pk, SAVED, 1, {"blank": False}),
        (user.pk, SAVED, 2, {"blank": False}),
    ]


def test_put_the_same_prompt_again_writes_nothing(user, api):
    first = put_prompt(api, "Same.").json()

    response = put_prompt(api, "  Same. ")

    assert response.status_code == 200
    assert response.json() == first
    assert outbox_rows() == [(user.pk, SAVED, 1, {"blank": False})]


def test_put_a_blank_prompt_saves_it_blank_and_it_does_not_count(user, api):
    put_prompt(api, "Something.")

    response = put_prompt(api, "   \n\t ")

    assert response.status_code == 200
    assert response.json()["content"] == ""
    assert ManualPrompt.objects.get(user=user).content == ""
    assert api.get("/api/v1/accounts/wizard-status").json()["details"]["manual_prompt"] is False
    assert outbox_rows() == [
        (user.pk, SAVED, 1, {"blank": False}),
        (user.pk, SAVED, 2, {"blank": True}),
    ]


@pytest.mark.parametrize("char", ["a", "\u00e9", "\U0001f600"], ids=["ascii", "accent", "emoji"])
def test_put_prompt_of_exactly_10000_characters_is_accepted(user, api, char):
    response = put_prompt(api, char * 10_000)

    assert response.status_code == 200
    assert response.json()["content"] == char * 10_000
    assert ManualPrompt.objects.get(user=user).content == char * 10_000


@pytest.mark.parametrize("char", ["a", "\U0001f600"], ids=["ascii", "emoji"])
def test_put_prompt_of_10001_characters_is_422(db, char):
    user = make_complete_user()
    before = onboarding_data_of(user)

    response = put_prompt(bearer_client(user), char * 10_001)

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "too_long",
                "loc": ["body", "payload", "content"],
                "msg": "Value should have at most 10000 items after validation, not 10001",
                "ctx": {"field_type": "Value", "max_length": 10000, "actual_length": 10001},
            }
        ]
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_delete_prompt(db):
    user = make_complete_user()
    client = bearer_client(user)

    response = client.delete(PROMPT)

    assert response.status_code == 204
    assert response.content == b""
    assert ManualPrompt.objects.filter(user=user).exists() is False
    assert client.get(PROMPT).json() == {"content": "", "updated_at": None}
    assert outbox_rows() == [(user.pk, DELETED, 1, {})]


def test_delete_prompt_when_there_is_none_writes_nothing(user, api):
    response = api.delete(PROMPT)

    assert response.status_code == 204
    assert response.content == b""
    assert outbox_rows() == []


def test_prompts_are_private_to_their_user(user, api):
    other = make_complete_user()
    before = onboarding_data_of(other)

    assert api.get(PROMPT).json() == {"content": "", "updated_at": None}
    put_prompt(api, "Mine.")
    api.delete(PROMPT)
    put_prompt(api, "Mine again.")

    assert onboarding_data_of(other) == before
    assert ManualPrompt.objects.get(user=other).content == "Be kind."
    assert bearer_client(other).get(PROMPT).json()["content"] == "Be kind."
    assert {row[0] for row in outbox_rows()} == {user.pk}


# --- channels -----------------------------------------------------------------------------


def test_channel_list_is_empty_for_a_new_user(api):
    response = api.get(CHANNELS)

    assert response.status_code == 200
    assert response.json() == []


def test_channel_list_shows_only_active_channels_oldest_first(user, api):
    instagram = make_channel(user, "instagram", "ig-1", name="Shop")
    make_channel(user, "telegram", "tg-old", disconnected_at=timezone.now())
    telegram = make_channel(user, "telegram", "tg-1")

    response = api.get(CHANNELS)

    assert response.status_code == 200
    assert response.json() == [channel_json(instagram), channel_json(telegram)]
    assert response.json()[0] == {
        "id": instagram.pk,
        "platform": "instagram",
        "external_id": "ig-1",
        "name": "Shop",
        "connected_at": json_datetime(instagram.connected_at),
    }


@pytest.mark.parametrize("platform", ["instagram", "telegram"])
def test_connect_a_channel_answers_201(user, api, platform):
    started = timezone.now()

    response = connect(api, platform=platform, external_id=" acct-1 ", name=" My shop ")

    assert response.status_code == 201
    channel = Channel.objects.get()
    assert (channel.user_id, channel.platform, channel.external_id, channel.name) == (
        user.pk,
        platform,
        "acct-1",
        "My shop",
    )
    assert channel.disconnected_at is None
    assert started <= channel.connected_at <= timezone.now()
    assert response.json() == channel_json(channel)
    assert api.get(CHANNELS).json() == [channel_json(channel)]
    assert outbox_rows() == [
        (user.pk, CONNECTED, 1, {"channel_id": channel.pk, "platform": platform})
    ]


@pytest.mark.parametrize(
    "name", [{}, {"name": None}, {"name": ""}], ids=["absent", "null", "empty"]
)
def test_connect_without_a_name(user, api, name):
    response = connect(api, platform="telegram", external_id="tg-1", **name)

    assert response.status_code == 201
    assert response.json()["name"] == ""
    assert Channel.objects.get().name == ""


def test_connect_the_same_account_again_answers_200_and_writes_nothing(user, api):
    first = connect(api, platform="instagram", external_id="ig-1", name="Shop").json()

    for body in (
        {"platform": "instagram", "external_id": "ig-1", "name": "Shop"},
        {"platform": "instagram", "external_id": "  ig-1 "},
        {"platform": "instagram", "external_id": "ig-1", "name": "Renamed"},
    ):
        response = connect(api, **body)
        assert response.status_code == 200
        assert response.json() == first

    assert Channel.objects.count() == 1
    assert outbox_rows() == [
        (user.pk, CONNECTED, 1, {"channel_id": first["id"], "platform": "instagram"})
    ]


def test_connect_an_account_of_another_user_is_409(user, api):
    other = make_user()
    taken = make_channel(other, "instagram", "ig-taken")
    mine_before = onboarding_data_of(user)
    theirs_before = onboarding_data_of(other)

    response = connect(api, platform="instagram", external_id="ig-taken")

    assert response.status_code == 409
    assert response.json() == {
        "code": "channel_taken",
        "detail": "This account is already connected to another user.",
    }
    assert onboarding_data_of(user) == mine_before
    assert onboarding_data_of(other) == theirs_before
    assert Channel.objects.get(pk=taken.pk).user_id == other.pk
    assert outbox_rows() == []


def test_the_same_external_id_on_the_other_platform_is_a_different_account(user, api):
    make_channel(make_user(), "instagram", "shared-id")

    response = connect(api, platform="telegram", external_id="shared-id")

    assert response.status_code == 201
    assert Channel.objects.get(pk=response.json()["id"]).user_id == user.pk


def test_an_account_released_by_its_owner_can_be_connected_by_another_user(user, api):
    other = make_user()
    released = make_channel(other, "telegram", "tg-free")
    assert bearer_client(other).delete(f"{CHANNELS}/{released.pk}").status_code == 204

    response = connect(api, platform="telegram", external_id="tg-free")

    assert response.status_code == 201
    assert response.json()["id"] != released.pk
    assert Channel.objects.get(pk=response.json()["id"]).user_id == user.pk


@pytest.mark.parametrize("platform", ["facebook", "Instagram", "TELEGRAM", "whatsapp", ""])
def test_connect_another_platform_is_422(db, platform):
    user = make_complete_user()
    before = onboarding_data_of(user)

    response = connect(bearer_client(user), platform=platform, external_id="x")

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "enum",
                "loc": ["body", "payload", "platform"],
                "msg": "Input should be 'instagram' or 'telegram'",
                "ctx": {"expected": "'instagram' or 'telegram'"},
            }
        ]
    }
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_disconnect_a_channel(user, api):
    channel = make_channel(user, "telegram", "tg-1")
    started = timezone.now()

    response = api.delete(f"{CHANNELS}/{channel.pk}")

    assert response.status_code == 204
    assert response.content == b""
    channel.refresh_from_db()
    assert started <= channel.disconnected_at <= timezone.now()
    assert api.get(CHANNELS).json() == []
    assert outbox_rows() == [
        (user.pk, DISCONNECTED, 1, {"channel_id": channel.pk, "platform": "telegram"})
    ]


def test_disconnect_twice_is_404_the_second_time(user, api):
    channel = make_channel(user)
    api.delete(f"{CHANNELS}/{channel.pk}")

    response = api.delete(f"{CHANNELS}/{channel.pk}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert len(outbox_rows()) == 1


def test_disconnect_an_unknown_channel_is_404(user, api):
    before = onboarding_data_of(user)

    response = api.delete(f"{CHANNELS}/987654321")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_disconnect_another_users_channel_is_404_and_leaves_it_connected(user, api):
    other = make_complete_user()
    theirs = Channel.objects.get(user=other)
    before = onboarding_data_of(other)

    response = api.delete(f"{CHANNELS}/{theirs.pk}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert onboarding_data_of(other) == before
    assert outbox_rows() == []


def test_a_user_never_sees_another_users_channels(user, api):
    other = make_user()
    mine = make_channel(user, "instagram", "ig-mine")
    make_channel(other, "instagram", "ig-theirs")
    make_channel(other, "telegram", "tg-theirs")

    assert api.get(CHANNELS).json() == [channel_json(mine)]
    assert [item["external_id"] for item in bearer_client(other).get(CHANNELS).json()] == [
        "ig-theirs",
        "tg-theirs",
    ]


def test_connect_and_disconnect_move_the_wizard_status(user, api):
    channel_id = connect(api, platform="instagram", external_id="ig-1").json()["id"]
    connected = api.get("/api/v1/accounts/wizard-status").json()
    api.delete(f"{CHANNELS}/{channel_id}")
    disconnected = api.get("/api/v1/accounts/wizard-status").json()

    assert (connected["version"], connected["details"]["channel_connected"]) == (1, True)
    assert connected["details"]["instagram_connected"] is True
    assert (disconnected["version"], disconnected["details"]["channel_connected"]) == (2, False)
    assert disconnected["details"]["instagram_connected"] is False

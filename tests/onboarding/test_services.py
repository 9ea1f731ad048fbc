"""The onboarding services: validation, normalisation, the rules, and the outbox row of each."""

import pytest

from onboarding import services
from onboarding.exceptions import (
    ChannelTaken,
    InvalidInput,
    NotFound,
    PasswordRejected,
    UsernameTaken,
    WizardIncomplete,
)
from onboarding.models import Channel, ManualPrompt, User
from outbox.models import OutboxEvent, Topic
from tests.factories import PASSWORD, make_complete_user, make_user, profile_of

pytestmark = pytest.mark.django_db


def rows(user: User) -> list[tuple[str, int, dict]]:
    return list(
        OutboxEvent.objects.filter(user=user)
        .order_by("version")
        .values_list("topic", "version", "payload")
    )


def profile(user: User) -> tuple[str, str, str, str]:
    onboarding = profile_of(user)
    return (
        onboarding.first_name,
        onboarding.last_name,
        onboarding.phone_number,
        onboarding.business_type,
    )


# profile_update


def test_profile_update_trims_names(user):
    updated = services.profile_update(
        user_id=user.pk, first_name="  Ada \t", last_name="\u00a0Lovelace "
    )

    assert (updated.first_name, updated.last_name) == ("Ada", "Lovelace")
    assert profile(user) == ("Ada", "Lovelace", "", "")
    assert updated.version == 1
    assert rows(user) == [(Topic.PROFILE_UPDATED, 1, {"fields": ["first_name", "last_name"]})]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+14155552671", "+14155552671"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("  +1 415.555.2671 ", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_profile_update_normalises_phone_to_e164(user, given, stored):
    services.profile_update(user_id=user.pk, phone_number=given)

    assert profile(user) == ("", "", stored, "")
    assert rows(user) == [(Topic.PROFILE_UPDATED, 1, {"fields": ["phone_number"]})]


@pytest.mark.parametrize(
    "phone",
    [
        "12345",
        "4155552671",  # no country code and no default region
        "+1 555 0000",
        "+999 123",
        "phone",
        "+" + "1" * 70,
        "+1415555\n2671",
    ],
)
def test_profile_update_rejects_invalid_phone_and_writes_nothing(user, phone):
    with pytest.raises(InvalidInput) as caught:
        services.profile_update(user_id=user.pk, first_name="Ada", phone_number=phone)

    assert caught.value.field == "phone_number"
    assert profile(user) == ("", "", "", "")
    assert profile_of(user).version == 0
    assert rows(user) == []


@pytest.mark.parametrize("business_type", ["spaceship", "Retail", " retail", "E-commerce"])
def test_profile_update_rejects_unknown_business_type_and_writes_nothing(user, business_type):
    with pytest.raises(InvalidInput) as caught:
        services.profile_update(user_id=user.pk, last_name="Lovelace", business_type=business_type)

    assert caught.value.field == "business_type"
    assert profile(user) == ("", "", "", "")
    assert rows(user) == []


def test_profile_update_rejects_overlong_name_and_writes_nothing(user):
    with pytest.raises(InvalidInput) as caught:
        services.profile_update(user_id=user.pk, first_name="x" * 151)

    assert caught.value.field == "first_name"
    assert profile(user) == ("", "", "", "")
    assert rows(user) == []


@pytest.mark.parametrize("cleared", [None, ""])
def test_profile_update_none_or_blank_clears(user, cleared):
    services.profile_update(
        user_id=user.pk,
        first_name="Ada",
        last_name="Lovelace",
        phone_number="+14155552671",
        business_type="retail",
    )

    updated = services.profile_update(
        user_id=user.pk,
        first_name=cleared,
        last_name=cleared,
        phone_number=cleared,
        business_type=cleared,
    )

    assert updated.version == 2
    assert profile(user) == ("", "", "", "")
    fields = ["first_name", "last_name", "phone_number", "business_type"]
    assert rows(user) == [
        (Topic.PROFILE_UPDATED, 1, {"fields": fields}),
        (Topic.PROFILE_UPDATED, 2, {"fields": fields}),
    ]


def test_profile_update_leaves_unset_fields_alone(user):
    services.profile_update(user_id=user.pk, first_name="Ada", business_type="retail")

    services.profile_update(user_id=user.pk, last_name="Lovelace")

    assert profile(user) == ("Ada", "Lovelace", "", "retail")
    assert rows(user)[-1] == (Topic.PROFILE_UPDATED, 2, {"fields": ["last_name"]})


def test_profile_update_without_change_writes_no_row(user):
    services.profile_update(user_id=user.pk, first_name="Ada", phone_number="+14155552671")

    unchanged = services.profile_update(
        user_id=user.pk, first_name=" Ada ", phone_number="+1 415 555 2671"
    )
    services.profile_update(user_id=user.pk)

    assert unchanged.version == 1
    assert rows(user) == [(Topic.PROFILE_UPDATED, 1, {"fields": ["first_name", "phone_number"]})]


def test_profile_update_of_missing_user_raises_not_found():
    with pytest.raises(NotFound):
        services.profile_update(user_id=987_654, first_name="Ada")

    assert OutboxEvent.objects.count() == 0


# manual_prompt_save / manual_prompt_delete


def test_manual_prompt_save_trims(user):
    prompt = services.manual_prompt_save(user_id=user.pk, content="\n  Be kind.\n\tAlways. \n")

    assert prompt.content == "Be kind.\n\tAlways."
    assert ManualPrompt.objects.get(user=user).content == "Be kind.\n\tAlways."
    assert rows(user) == [(Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False})]


def test_manual_prompt_save_accepts_exactly_the_limit(user):
    # Surrounding whitespace does not count: it is trimmed before the length check.
    prompt = services.manual_prompt_save(user_id=user.pk, content="  " + "x" * 10_000 + "  ")

    assert len(ManualPrompt.objects.get(pk=prompt.pk).content) == 10_000
    assert rows(user) == [(Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False})]


def test_manual_prompt_save_rejects_over_10000_chars_and_writes_nothing(user):
    services.manual_prompt_save(user_id=user.pk, content="Old.")

    with pytest.raises(InvalidInput) as caught:
        services.manual_prompt_save(user_id=user.pk, content="x" * 10_001)

    assert caught.value.field == "content"
    assert ManualPrompt.objects.get(user=user).content == "Old."
    assert rows(user) == [(Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False})]


def test_manual_prompt_save_rejects_control_characters(user):
    with pytest.raises(InvalidInput) as caught:
        services.manual_prompt_save(user_id=user.pk, content="Be\x07 kind.")

    assert caught.value.field == "content"
    assert not ManualPrompt.objects.filter(user=user).exists()
    assert rows(user) == []


def test_manual_prompt_save_same_content_writes_no_row(user):
    first = services.manual_prompt_save(user_id=user.pk, content="Be kind.")

    again = services.manual_prompt_save(user_id=user.pk, content=" Be kind. ")

    assert (again.pk, again.updated_at) == (first.pk, first.updated_at)
    assert rows(user) == [(Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False})]


def test_manual_prompt_save_blank_is_saved_but_does_not_meet_the_requirement(user):
    services.manual_prompt_save(user_id=user.pk, content="Be kind.")

    services.manual_prompt_save(user_id=user.pk, content="   ")

    assert ManualPrompt.objects.get(user=user).content == ""
    assert rows(user)[-1] == (Topic.MANUAL_PROMPT_SAVED, 2, {"blank": True})
    with pytest.raises(WizardIncomplete) as caught:
        services.wizard_complete(user_id=user.pk)
    assert "manual_prompt" in caught.value.missing_fields


def test_manual_prompt_delete(user):
    services.manual_prompt_save(user_id=user.pk, content="Be kind.")

    services.manual_prompt_delete(user_id=user.pk)
    services.manual_prompt_delete(user_id=user.pk)

    assert not ManualPrompt.objects.filter(user=user).exists()
    assert rows(user) == [
        (Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False}),
        (Topic.MANUAL_PROMPT_DELETED, 2, {}),
    ]


# channel_connect / channel_disconnect


def test_channel_connect_creates_an_active_channel(user):
    connection = services.channel_connect(
        user_id=user.pk, platform="instagram", external_id="  ig-1 ", name=" Shop "
    )

    channel = Channel.objects.get(pk=connection.channel.pk)
    assert connection.created is True
    assert (channel.user_id, channel.platform, channel.external_id, channel.name) == (
        user.pk,
        "instagram",
        "ig-1",
        "Shop",
    )
    assert channel.disconnected_at is None
    assert rows(user) == [
        (Topic.CHANNEL_CONNECTED, 1, {"channel_id": channel.pk, "platform": "instagram"})
    ]


def test_channel_connect_again_by_the_same_user_returns_it_without_a_row(user):
    first = services.channel_connect(user_id=user.pk, platform="telegram", external_id="tg-1")

    again = services.channel_connect(
        user_id=user.pk, platform="telegram", external_id="tg-1", name="Renamed"
    )

    assert again.created is False
    assert again.channel.pk == first.channel.pk
    assert Channel.objects.count() == 1
    assert len(rows(user)) == 1


def test_channel_connect_taken_by_another_user(user, other_user):
    services.channel_connect(user_id=other_user.pk, platform="instagram", external_id="ig-1")

    with pytest.raises(ChannelTaken):
        services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")

    assert list(Channel.objects.values_list("user_id", flat=True)) == [other_user.pk]
    assert rows(user) == []
    assert profile_of(user).version == 0


def test_same_external_id_on_another_platform_is_another_account(user, other_user):
    services.channel_connect(user_id=other_user.pk, platform="instagram", external_id="shop")

    connection = services.channel_connect(user_id=user.pk, platform="telegram", external_id="shop")

    assert connection.created is True
    assert rows(user) == [
        (Topic.CHANNEL_CONNECTED, 1, {"channel_id": connection.channel.pk, "platform": "telegram"})
    ]


@pytest.mark.parametrize(
    ("platform", "external_id", "field"),
    [
        ("myspace", "x", "platform"),
        ("Instagram", "x", "platform"),
        ("instagram", "   ", "external_id"),
        ("instagram", "x" * 256, "external_id"),
        ("instagram", "ig\n1", "external_id"),
    ],
)
def test_channel_connect_rejects_invalid_input(user, platform, external_id, field):
    with pytest.raises(InvalidInput) as caught:
        services.channel_connect(user_id=user.pk, platform=platform, external_id=external_id)

    assert caught.value.field == field
    assert not Channel.objects.exists()
    assert rows(user) == []


def test_channel_disconnect(user):
    connection = services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")

    services.channel_disconnect(user_id=user.pk, channel_id=connection.channel.pk)

    channel = Channel.objects.get(pk=connection.channel.pk)
    assert channel.disconnected_at is not None
    assert channel.disconnected_at >= channel.connected_at
    assert rows(user)[-1] == (
        Topic.CHANNEL_DISCONNECTED,
        2,
        {"channel_id": channel.pk, "platform": "instagram"},
    )


def test_channel_disconnect_twice_raises_not_found(user):
    connection = services.channel_connect(user_id=user.pk, platform="telegram", external_id="tg")
    services.channel_disconnect(user_id=user.pk, channel_id=connection.channel.pk)

    with pytest.raises(NotFound):
        services.channel_disconnect(user_id=user.pk, channel_id=connection.channel.pk)

    assert [topic for topic, _, _ in rows(user)] == [
        Topic.CHANNEL_CONNECTED,
        Topic.CHANNEL_DISCONNECTED,
    ]


def test_channel_disconnect_of_another_users_channel_raises_not_found(user, other_user):
    theirs = services.channel_connect(
        user_id=other_user.pk, platform="instagram", external_id="ig-1"
    )

    with pytest.raises(NotFound):
        services.channel_disconnect(user_id=user.pk, channel_id=theirs.channel.pk)

    assert Channel.objects.get(pk=theirs.channel.pk).disconnected_at is None
    assert rows(user) == []
    assert len(rows(other_user)) == 1


def test_disconnected_account_can_be_connected_by_another_user_later(user, other_user):
    first = services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")
    services.channel_disconnect(user_id=user.pk, channel_id=first.channel.pk)

    second = services.channel_connect(
        user_id=other_user.pk, platform="instagram", external_id="ig-1"
    )

    assert second.created is True
    assert second.channel.pk != first.channel.pk
    assert list(
        Channel.objects.filter(external_id="ig-1", disconnected_at__isnull=True).values_list(
            "pk", "user_id"
        )
    ) == [(second.channel.pk, other_user.pk)]
    assert rows(other_user) == [
        (Topic.CHANNEL_CONNECTED, 1, {"channel_id": second.channel.pk, "platform": "instagram"})
    ]
    # And then the first user cannot take it back.
    with pytest.raises(ChannelTaken):
        services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")
    assert len(rows(user)) == 2


def test_reconnecting_own_disconnected_account_creates_a_new_channel(user):
    first = services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")
    services.channel_disconnect(user_id=user.pk, channel_id=first.channel.pk)

    again = services.channel_connect(user_id=user.pk, platform="instagram", external_id="ig-1")

    assert again.created is True
    assert again.channel.pk != first.channel.pk
    assert [version for _, version, _ in rows(user)] == [1, 2, 3]


# wizard_complete


def test_wizard_complete_lists_every_missing_field_in_canonical_order(user):
    with pytest.raises(WizardIncomplete) as caught:
        services.wizard_complete(user_id=user.pk)

    assert caught.value.missing_fields == [
        "first_name",
        "last_name",
        "phone_number",
        "business_type",
        "manual_prompt",
        "channel_connected",
    ]
    assert profile_of(user).wizard_completed_at is None
    assert rows(user) == []


def test_wizard_complete_lists_what_is_still_missing(user):
    services.profile_update(user_id=user.pk, first_name="Ada", business_type="retail")
    services.channel_connect(user_id=user.pk, platform="telegram", external_id="tg-1")

    with pytest.raises(WizardIncomplete) as caught:
        services.wizard_complete(user_id=user.pk)

    assert caught.value.missing_fields == ["last_name", "phone_number", "manual_prompt"]
    assert [topic for topic, _, _ in rows(user)] == [
        Topic.PROFILE_UPDATED,
        Topic.CHANNEL_CONNECTED,
    ]


def test_wizard_complete_marks_completion_once():
    user = make_complete_user()

    first = services.wizard_complete(user_id=user.pk)
    second = services.wizard_complete(user_id=user.pk)

    assert profile_of(user).wizard_completed_at == first.completed_at
    assert second.completed_at == first.completed_at
    assert first.status.wizard_complete is True
    assert (first.status.version, second.status.version) == (1, 1)
    assert profile_of(user).version == 1
    assert rows(user) == [(Topic.WIZARD_COMPLETED, 1, {})]


def test_completed_wizard_stays_complete_when_a_requirement_goes_away():
    user = make_complete_user()
    first = services.wizard_complete(user_id=user.pk)

    services.profile_update(user_id=user.pk, first_name=None)
    again = services.wizard_complete(user_id=user.pk)

    assert again.completed_at == first.completed_at
    assert again.status.wizard_complete is True
    assert again.status.missing_fields == ["first_name"]
    assert [topic for topic, _, _ in rows(user)] == [
        Topic.WIZARD_COMPLETED,
        Topic.PROFILE_UPDATED,
    ]


# user_set_active


def test_user_set_active_writes_an_activation_row(user):
    services.user_set_active(user_id=user.pk, is_active=False)
    services.user_set_active(user_id=user.pk, is_active=False)
    services.user_set_active(user_id=user.pk, is_active=True)

    assert User.objects.get(pk=user.pk).is_active is True
    assert rows(user) == [
        (Topic.ACCOUNT_ACTIVATION_CHANGED, 1, {"is_active": False}),
        (Topic.ACCOUNT_ACTIVATION_CHANGED, 2, {"is_active": True}),
    ]


def test_user_set_active_unchanged_writes_no_row(user):
    returned = services.user_set_active(user_id=user.pk, is_active=True)

    assert (returned.is_active, profile_of(user).version) == (True, 0)
    assert rows(user) == []


# user_register


def test_user_register_creates_a_user_who_can_log_in():
    user = services.user_register(
        username="  grace ", password=PASSWORD, email=" grace@example.com "
    )

    stored = User.objects.get(pk=user.pk)
    assert (stored.username, stored.email) == ("grace", "grace@example.com")
    assert stored.check_password(PASSWORD)
    assert profile_of(stored).version == 0


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "This password is too short. It must contain at least 8 characters."),
        ("", "This password is too short. It must contain at least 8 characters."),
        ("password123", "This password is too common."),
        ("12345678901234", "This password is entirely numeric."),
        ("gracehopper", "The password is too similar to the username."),
    ],
)
def test_user_register_rejects_weak_passwords(password, message):
    with pytest.raises(PasswordRejected) as caught:
        services.user_register(username="gracehopper", password=password)

    assert caught.value.messages == [message]
    assert not User.objects.filter(username__iexact="gracehopper").exists()


@pytest.mark.parametrize("taken", ["Grace", "GRACE", "grace", " grace "])
def test_user_register_rejects_taken_username_case_insensitively(taken):
    make_user(username="grace")

    with pytest.raises(UsernameTaken):
        services.user_register(username=taken, password=PASSWORD)

    assert list(User.objects.values_list("username", flat=True)) == ["grace"]


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        ("", "", "username"),
        ("   ", "", "username"),
        ("a" * 151, "", "username"),
        ("grace hopper", "", "username"),
        ("grace", "not-an-email", "email"),
    ],
)
def test_user_register_rejects_invalid_input(username, email, field):
    with pytest.raises(InvalidInput) as caught:
        services.user_register(username=username, password=PASSWORD, email=email)

    assert caught.value.field == field
    assert not User.objects.exists()

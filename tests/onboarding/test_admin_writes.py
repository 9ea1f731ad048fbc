"""The admin writes through the services, so its edits leave outbox rows; every admin page
renders. (The outbox admin's own tools: tests/outbox/test_admin.py.)"""

import pytest
from django.utils import timezone

from onboarding import services
from onboarding.models import Channel, ManualPrompt, User, WizardStatusHistory
from onboarding.selectors import wizard_status_get
from outbox.models import OutboxEvent, Topic
from tests.factories import make_user, profile_of

pytestmark = pytest.mark.django_db


ONBOARDING_FIELDS = ("first_name", "last_name", "phone_number", "business_type")


def user_change_form(user: User, **changes) -> dict:
    """The change form as the browser posts it, with `changes` applied; the onboarding
    fields are those of the page's inline."""
    onboarding = profile_of(user)
    form = {
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": [],
        "user_permissions": [],
        "onboarding-TOTAL_FORMS": "1",
        "onboarding-INITIAL_FORMS": "1",
        "onboarding-MIN_NUM_FORMS": "0",
        "onboarding-MAX_NUM_FORMS": "1",
        "onboarding-0-user": str(user.pk),
        **{f"onboarding-0-{name}": getattr(onboarding, name) for name in ONBOARDING_FIELDS},
        "_save": "Save",
    }
    for name, value in changes.items():
        form[f"onboarding-0-{name}" if name in ONBOARDING_FIELDS else name] = value
    # Unchecked checkboxes are not posted at all.
    return {name: value for name, value in form.items() if value is not False}


def rows(user: User) -> list[tuple[str, int, dict]]:
    return list(
        OutboxEvent.objects.filter(user=user)
        .order_by("version")
        .values_list("topic", "version", "payload")
    )


def test_user_change_form_goes_through_the_services(admin_client):
    user = make_user(first_name="Ada")

    response = admin_client.post(
        f"/admin/onboarding/user/{user.pk}/change/",
        user_change_form(
            user, first_name="  Grace ", phone_number="+1 (415) 555-2671", is_active=False
        ),
    )

    assert response.status_code == 302
    user.refresh_from_db()
    onboarding = profile_of(user)
    assert (onboarding.first_name, onboarding.phone_number, user.is_active) == (
        "Grace",
        "+14155552671",
        False,
    )
    assert onboarding.version == 2
    assert rows(user) == [
        (Topic.PROFILE_UPDATED, 1, {"fields": ["first_name", "phone_number"]}),
        (Topic.ACCOUNT_ACTIVATION_CHANGED, 2, {"is_active": False}),
    ]


def test_user_change_form_without_onboarding_change_writes_no_row(admin_client):
    user = make_user(first_name="Ada", phone_number="+14155552671")

    response = admin_client.post(
        f"/admin/onboarding/user/{user.pk}/change/",
        user_change_form(user, phone_number="+1 415 555 2671", email="ada@example.com"),
    )

    assert response.status_code == 302
    user.refresh_from_db()
    onboarding = profile_of(user)
    assert (user.email, onboarding.phone_number, onboarding.version) == (
        "ada@example.com",
        "+14155552671",
        0,
    )
    assert rows(user) == []


def test_user_change_form_with_invalid_phone_shows_an_error_and_saves_nothing(admin_client):
    user = make_user(first_name="Ada")

    response = admin_client.post(
        f"/admin/onboarding/user/{user.pk}/change/",
        user_change_form(user, first_name="Grace", phone_number="12345"),
    )

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert inline.formset.errors == [
        {"phone_number": ["Enter a valid phone number in international format, e.g. +14155552671."]}
    ]
    onboarding = profile_of(user)
    assert (onboarding.first_name, onboarding.phone_number, onboarding.version) == ("Ada", "", 0)
    assert OutboxEvent.objects.count() == 0


def test_channel_add_goes_through_the_service(admin_client):
    user = make_user()

    response = admin_client.post(
        "/admin/onboarding/channel/add/",
        {"user": user.pk, "platform": "instagram", "external_id": "ig-1", "name": "Shop"},
    )

    assert response.status_code == 302
    channel = Channel.objects.get()
    assert (channel.user_id, channel.platform, channel.external_id, channel.name) == (
        user.pk,
        "instagram",
        "ig-1",
        "Shop",
    )
    assert rows(user) == [
        (Topic.CHANNEL_CONNECTED, 1, {"channel_id": channel.pk, "platform": "instagram"})
    ]


def test_channel_add_of_a_taken_account_is_refused_without_a_row(admin_client):
    owner, user = make_user(), make_user()
    Channel.objects.create(
        user=owner, platform="instagram", external_id="ig-1", connected_at=timezone.now()
    )

    response = admin_client.post(
        "/admin/onboarding/channel/add/",
        {"user": user.pk, "platform": "instagram", "external_id": "ig-1", "name": ""},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "external_id": ["This account is already connected to another user."]
    }
    assert list(Channel.objects.values_list("user_id", flat=True)) == [owner.pk]
    assert OutboxEvent.objects.count() == 0


def test_channel_disconnect_action_goes_through_the_service(admin_client):
    user = make_user()
    admin_client.post(
        "/admin/onboarding/channel/add/",
        {"user": user.pk, "platform": "telegram", "external_id": "tg-1", "name": ""},
    )
    channel = Channel.objects.get()

    response = admin_client.post(
        "/admin/onboarding/channel/",
        {"action": "disconnect", "_selected_action": [channel.pk], "index": "0"},
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.disconnected_at is not None
    assert rows(user) == [
        (Topic.CHANNEL_CONNECTED, 1, {"channel_id": channel.pk, "platform": "telegram"}),
        (Topic.CHANNEL_DISCONNECTED, 2, {"channel_id": channel.pk, "platform": "telegram"}),
    ]


def test_manual_prompt_add_goes_through_the_service(admin_client):
    user = make_user()

    response = admin_client.post(
        "/admin/onboarding/manualprompt/add/", {"user": user.pk, "content": " Be kind. "}
    )

    assert response.status_code == 302
    assert ManualPrompt.objects.get(user=user).content == "Be kind."
    assert rows(user) == [(Topic.MANUAL_PROMPT_SAVED, 1, {"blank": False})]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/onboarding/user/",
        "/admin/onboarding/user/?is_active__exact=1",
        "/admin/onboarding/user/add/",
        "/admin/onboarding/user/{user}/change/",
        "/admin/onboarding/manualprompt/",
        "/admin/onboarding/manualprompt/add/",
        "/admin/onboarding/manualprompt/{prompt}/change/",
        "/admin/onboarding/channel/",
        "/admin/onboarding/channel/add/",
        "/admin/onboarding/channel/{channel}/change/",
        "/admin/outbox/outboxevent/",
        "/admin/outbox/outboxevent/?state=pending",
        "/admin/outbox/outboxevent/?state=failed",
        "/admin/outbox/outboxevent/?state=relayed",
        "/admin/outbox/outboxevent/{event}/change/",
        "/admin/onboarding/wizardstatushistory/",
        "/admin/onboarding/wizardstatushistory/{history}/change/",
    ],
)
def test_admin_pages_render(admin_client, events_in_every_state, path):
    user = make_user()
    prompt = services.manual_prompt_save(user_id=user.pk, content="Be kind.")
    channel = services.channel_connect(
        user_id=user.pk, platform="instagram", external_id="ig-1"
    ).channel
    history = WizardStatusHistory.objects.create(
        user=user,
        version=2,
        status=wizard_status_get(user_id=user.pk).as_message(),
        changed=["manual_prompt", "channel_connected", "instagram_connected"],
        causes=[Topic.MANUAL_PROMPT_SAVED, Topic.CHANNEL_CONNECTED],
        occurred_at=timezone.now(),
        recorded_at=timezone.now(),
    )
    url = path.format(
        history=history.pk,
        user=user.pk,
        prompt=prompt.pk,
        channel=channel.pk,
        event=events_in_every_state["failed"].pk,
    )

    response = admin_client.get(url)

    assert response.status_code == 200


def test_saving_a_disconnected_channels_page_does_not_reconnect_it(admin_client):
    user = make_user()
    connection = services.channel_connect(user_id=user.pk, platform="telegram", external_id="tg-1")
    services.channel_disconnect(user_id=user.pk, channel_id=connection.channel.pk)

    response = admin_client.post(
        f"/admin/onboarding/channel/{connection.channel.pk}/change/", {"_save": "Save"}
    )

    assert response.status_code == 302
    assert [(channel.pk, channel.is_active) for channel in Channel.objects.all()] == [
        (connection.channel.pk, False)
    ]
    assert [topic for topic, _, _ in rows(user)] == [
        Topic.CHANNEL_CONNECTED,
        Topic.CHANNEL_DISCONNECTED,
    ]


def test_manual_prompt_add_with_control_characters_shows_an_error(admin_client):
    user = make_user()

    response = admin_client.post(
        "/admin/onboarding/manualprompt/add/", {"user": user.pk, "content": "Be\x07 kind."}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "content": ["Control characters other than newlines and tabs are not allowed."]
    }
    assert not ManualPrompt.objects.exists()
    assert OutboxEvent.objects.count() == 0

"""Who made a change: each outbox row names its actor, and each history entry the actors of
the rows behind it (contract section 3: `actors`, each `{kind, id}`)."""

import pytest
from django.test import Client

from onboarding import services, sign_ins
from onboarding.models import WizardStatusHistory
from outbox.models import Actor, OutboxEvent, Topic
from outbox.relay import outbox_relay
from tests.factories import make_user, tokens_for

HISTORY = "/api/v1/accounts/wizard-status/history"

pytestmark = pytest.mark.django_db


def history(user) -> list[dict]:
    access = tokens_for(user).access
    response = Client(headers={"Authorization": f"Bearer {access}"}).get(HISTORY)
    assert response.status_code == 200
    return [
        {key: item[key] for key in ("version", "changed", "causes", "actors")}
        for item in response.json()["items"]
    ]


def test_a_users_own_write_names_the_user(user):
    Client(headers={"Authorization": f"Bearer {tokens_for(user).access}"}).patch(
        "/api/v1/accounts/me", {"first_name": "Ada"}, content_type="application/json"
    )

    assert list(OutboxEvent.objects.values_list("actor_kind", "actor_id")) == [("user", user.pk)]
    outbox_relay()
    assert history(user) == [
        {
            "version": 1,
            "changed": ["first_name"],
            "causes": [Topic.PROFILE_UPDATED],
            "actors": [{"kind": "user", "id": user.pk}],
        }
    ]


def test_writes_of_the_user_an_admin_and_the_system_in_one_batch_name_each_once(user, admin_user):
    admin = Actor.admin(admin_user.pk)
    services.profile_update(user_id=user.pk, first_name="Ada")
    services.channel_connect(user_id=user.pk, platform="telegram", external_id="t1", actor=admin)
    services.manual_prompt_save(user_id=user.pk, content="Be kind.", actor=Actor.system())
    services.profile_update(user_id=user.pk, last_name="Lovelace", actor=admin)

    outbox_relay()

    [entry] = history(user)
    assert entry["actors"] == [
        {"kind": "user", "id": user.pk},
        {"kind": "admin", "id": admin_user.pk},
        {"kind": "system", "id": None},
    ]
    assert entry["causes"] == sorted(
        [Topic.PROFILE_UPDATED, Topic.CHANNEL_CONNECTED, Topic.MANUAL_PROMPT_SAVED]
    )


def test_a_revocation_in_the_same_batch_is_behind_no_status(user, admin_user):
    services.profile_update(user_id=user.pk, first_name="Ada")
    sign_ins.user_sessions_end(user_id=user.pk, actor=Actor.admin(admin_user.pk))

    outbox_relay()

    assert history(user) == [
        {
            "version": 1,
            "changed": ["first_name"],
            "causes": [Topic.PROFILE_UPDATED],
            "actors": [{"kind": "user", "id": user.pk}],
        }
    ]


def test_a_revocation_alone_records_no_history(user, admin_user):
    sign_ins.user_sessions_end(user_id=user.pk, actor=Actor.admin(admin_user.pk))

    report = outbox_relay()

    assert (report.relayed, WizardStatusHistory.objects.count()) == (1, 0)


def test_the_admins_edit_of_onboarding_data_names_the_admin(admin_user):
    user = make_user(first_name="Ada")
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get(f"/admin/onboarding/user/{user.pk}/change/")
    assert page.status_code == 200

    response = admin.post(
        f"/admin/onboarding/user/{user.pk}/change/",
        {
            "username": user.username,
            "email": "",
            "is_active": "on",
            "onboarding-TOTAL_FORMS": "1",
            "onboarding-INITIAL_FORMS": "1",
            "onboarding-MIN_NUM_FORMS": "0",
            "onboarding-MAX_NUM_FORMS": "1",
            "onboarding-0-user": str(user.pk),
            "onboarding-0-first_name": "Grace",
            "onboarding-0-last_name": "",
            "onboarding-0-phone_number": "",
            "onboarding-0-business_type": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    outbox_relay()
    assert history(user)[0]["actors"] == [{"kind": "admin", "id": admin_user.pk}]
    listing = admin.get("/admin/onboarding/wizardstatushistory/")
    assert listing.status_code == 200
    assert f'<td class="field-made_by">admin #{admin_user.pk}</td>' in listing.content.decode()
    outbox_page = admin.get("/admin/outbox/outboxevent/")
    assert outbox_page.status_code == 200
    assert "Actor kind" in outbox_page.content.decode()

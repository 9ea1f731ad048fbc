"""The admin's account tools: "end all sessions", the sign-ins list, deactivation."""

import pytest
from django.test import Client

from onboarding.models import SignIn, SignInEnd, User
from outbox.models import OutboxEvent, Topic
from tests.factories import make_user, tokens_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def me(access: str) -> int:
    return (
        Client(headers={"Authorization": f"Bearer {access}"}).get("/api/v1/accounts/me").status_code
    )


def test_end_all_sessions_signs_the_chosen_users_out_everywhere(admin, admin_user):
    chosen, spared = make_user(), make_user()
    chosen_pairs = [tokens_for(chosen), tokens_for(chosen)]
    spared_pair = tokens_for(spared)

    response = admin.post(
        "/admin/onboarding/user/",
        {"action": "end_all_sessions", "_selected_action": [chosen.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Ended all sessions of 1 user(s)." in response.content.decode()
    assert [me(pair.access) for pair in chosen_pairs] == [401, 401]
    assert me(spared_pair.access) == 200
    assert User.objects.get(pk=chosen.pk).credentials_generation == 1
    assert list(OutboxEvent.objects.values_list("user_id", "topic", "actor_kind", "actor_id")) == [
        (chosen.pk, Topic.CREDENTIALS_REVOKED, "admin", admin_user.pk)
    ]


def test_the_sign_ins_list_shows_and_ends_sign_ins(admin):
    user = make_user()
    pair = tokens_for(user)
    sign_in = SignIn.objects.get(user=user)

    listing = admin.get("/admin/onboarding/signin/")
    assert listing.status_code == 200
    assert user.username in listing.content.decode()
    assert sign_in.refresh_jti not in listing.content.decode()  # never shown

    admin.post(
        "/admin/onboarding/signin/", {"action": "end_selected", "_selected_action": [sign_in.pk]}
    )

    assert me(pair.access) == 401
    assert SignIn.objects.get(pk=sign_in.pk).end_reason == SignInEnd.REVOKED


def test_unchecking_active_deactivates_and_voids_the_users_credentials(admin):
    user = make_user()
    pair = tokens_for(user)

    response = admin.post(
        f"/admin/onboarding/user/{user.pk}/change/",
        {
            "username": user.username,
            "email": "",
            "onboarding-TOTAL_FORMS": "1",
            "onboarding-INITIAL_FORMS": "1",
            "onboarding-MIN_NUM_FORMS": "0",
            "onboarding-MAX_NUM_FORMS": "1",
            "onboarding-0-user": str(user.pk),
            "onboarding-0-first_name": "",
            "onboarding-0-last_name": "",
            "onboarding-0-phone_number": "",
            "onboarding-0-business_type": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    stored = User.objects.get(pk=user.pk)
    assert (stored.is_active, stored.credentials_generation) == (False, 1)
    assert me(pair.access) == 401
    assert list(OutboxEvent.objects.values_list("topic", "payload", "actor_kind")) == [
        (Topic.ACCOUNT_ACTIVATION_CHANGED, {"is_active": False}, "admin")
    ]


def test_a_user_created_in_the_admin_gets_onboarding_data_on_first_edit(admin):
    response = admin.post(
        "/admin/onboarding/user/add/",
        {
            "username": "fresh",
            "usable_password": "true",
            "password1": "a long pass phrase 7",
            "password2": "a long pass phrase 7",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    fresh = User.objects.get(username="fresh")
    page = admin.get(f"/admin/onboarding/user/{fresh.pk}/change/")
    assert page.status_code == 200

    response = admin.post(
        f"/admin/onboarding/user/{fresh.pk}/change/",
        {
            "username": "fresh",
            "email": "",
            "is_active": "on",
            "onboarding-TOTAL_FORMS": "1",
            "onboarding-INITIAL_FORMS": "0",
            "onboarding-MIN_NUM_FORMS": "0",
            "onboarding-MAX_NUM_FORMS": "1",
            "onboarding-0-user": str(fresh.pk),
            "onboarding-0-first_name": "Fresh",
            "onboarding-0-last_name": "",
            "onboarding-0-phone_number": "",
            "onboarding-0-business_type": "",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    assert fresh.onboarding.first_name == "Fresh"
    assert fresh.onboarding.version == 1

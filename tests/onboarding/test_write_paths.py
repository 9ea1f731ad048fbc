"""No write path outside the services changes onboarding data or moves its version back
(contract section 6).

Django writes the user row from places of its own: the admin's password form and
`changepassword` hash for ~0.3 s and then save the user instance they read before; login
updates `last_login`; `createsuperuser` inserts. Each is raced here against a user's write
that commits in the middle (the hasher is held until it has), checked through the API.
"""

import pytest
from django.core.management import call_command
from django.test import Client

from onboarding import services
from onboarding.models import User
from outbox.models import Topic
from outbox.relay import outbox_relay
from tests.concurrency import in_thread
from tests.factories import PASSWORD, make_user, tokens_for
from tests.hashers import GatedHasher

NEW_PASSWORD = "a brand new pass phrase 9"


@pytest.fixture
def gated_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.GatedHasher"]
    yield GatedHasher
    GatedHasher.disarm()


def api(access: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access}"})


def patch_first_name(access: str, value: str) -> dict:
    response = api(access).patch(
        "/api/v1/accounts/me", {"first_name": value}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def status_of(access: str) -> dict:
    response = api(access).get("/api/v1/accounts/wizard-status")
    assert response.status_code == 200, response.content
    return response.json()


def history_versions(access: str) -> list[tuple[int, bool]]:
    items = api(access).get("/api/v1/accounts/wizard-status/history").json()["items"]
    return [(item["version"], item["status"]["details"]["first_name"]) for item in items]


def sign_in(username: str, password: str) -> str:
    response = Client().post(
        "/api/v1/auth/token",
        {"username": username, "password": password},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def assert_the_write_survived(user: User, access_before: str) -> None:
    """The user's PATCH is there, at version 1; the next change takes version 2."""
    access = sign_in(user.username, NEW_PASSWORD)
    assert api(access).get("/api/v1/accounts/me").json()["first_name"] == "Grace"
    assert status_of(access)["version"] == 1
    # Every credential from before the password change is void, the PATCH's included.
    assert api(access_before).get("/api/v1/accounts/me").status_code == 401
    outbox_relay()
    patch_first_name(access, "")
    outbox_relay()
    assert status_of(access)["version"] == 2
    assert history_versions(access) == [(2, False), (1, True)]


@pytest.mark.django_db(transaction=True)
def test_the_admins_password_form_racing_a_users_patch_loses_nothing(gated_hasher, admin_user):
    user = make_user()
    access = tokens_for(user).access
    admin = Client()
    admin.force_login(admin_user)
    gated_hasher.arm()

    change = in_thread(
        lambda: admin.post(
            f"/admin/onboarding/user/{user.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        )
    )
    assert gated_hasher.started.wait(timeout=10)
    patch_first_name(access, "Grace")  # commits while the admin's request is hashing
    gated_hasher.proceed.set()

    assert change.result().status_code == 302
    assert_the_write_survived(user, access)
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_changepassword_racing_a_users_patch_loses_nothing(gated_hasher, monkeypatch):
    user = make_user()
    access = tokens_for(user).access
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)
    gated_hasher.arm()

    change = in_thread(lambda: call_command("changepassword", user.username, stdout=None))
    assert gated_hasher.started.wait(timeout=10)
    patch_first_name(access, "Grace")
    gated_hasher.proceed.set()

    change.result()
    assert_the_write_survived(user, access)


@pytest.mark.django_db(transaction=True)
def test_a_login_racing_a_users_patch_loses_nothing(gated_hasher):
    user = make_user()
    access = tokens_for(user).access
    browser = Client()
    gated_hasher.arm()

    login = in_thread(
        lambda: browser.post(
            "/api/v1/auth/login",
            {"username": user.username, "password": PASSWORD},
            content_type="application/json",
        )
    )
    assert gated_hasher.started.wait(timeout=10)
    patch_first_name(access, "Grace")
    gated_hasher.proceed.set()

    assert login.result().status_code == 200
    assert User.objects.get(pk=user.pk).last_login is not None
    assert browser.get("/api/v1/accounts/me").json()["first_name"] == "Grace"
    assert status_of(access)["version"] == 1


def test_createsuperuser_makes_an_account_whose_wizard_starts_empty(db):
    call_command("createsuperuser", interactive=False, username="root", email="root@example.com")
    root = User.objects.get(username="root")
    root.set_password(PASSWORD)
    root.save()

    access = sign_in("root", PASSWORD)
    status = status_of(access)
    assert (status["version"], status["progress"]["completed"]) == (0, 0)
    patch_first_name(access, "Grace")
    assert status_of(access)["version"] == 1


def test_a_stale_user_instance_saved_whole_reverts_no_deactivation(user):
    stale = User.objects.get(pk=user.pk)
    services.user_set_active(user_id=user.pk, is_active=False)

    stale.email = "new@example.com"
    stale.save()

    stored = User.objects.get(pk=user.pk)
    assert (stored.email, stored.is_active, stored.credentials_generation) == (
        "new@example.com",
        False,
        1,
    )
    assert (stale.is_active, stale.credentials_generation) == (False, 1)  # brought up to date


def test_a_deactivation_through_a_plain_save_is_refused(user):
    user = User.objects.get(pk=user.pk)
    user.is_active = False

    with pytest.raises(ValueError, match=r"onboarding\.services"):
        user.save()

    assert User.objects.get(pk=user.pk).is_active is True


def test_a_password_set_through_a_plain_save_still_ends_every_sign_in(user):
    access = tokens_for(user).access
    stored = User.objects.get(pk=user.pk)

    stored.set_password(NEW_PASSWORD)
    stored.save()

    assert api(access).get("/api/v1/accounts/me").status_code == 401
    assert sign_in(user.username, NEW_PASSWORD)


def test_the_admins_password_form_writes_the_admin_into_the_outbox(admin_user, user):
    admin = Client()
    admin.force_login(admin_user)

    response = admin.post(
        f"/admin/onboarding/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302
    assert list(user.outbox_events.values_list("topic", "actor_kind", "actor_id", "payload")) == [
        (
            Topic.CREDENTIALS_REVOKED,
            "admin",
            admin_user.pk,
            {"reason": "password_changed", "generation": 1},
        )
    ]
    # The admin changing their own password stays signed in (Django renews the session).
    own = admin.post(
        f"/admin/onboarding/user/{admin_user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert own.status_code == 302
    assert admin.get("/admin/").status_code == 200

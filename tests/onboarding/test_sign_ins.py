"""Sign-ins you can revoke (contract sections 3 and 6), tried as an attacker would.

Refresh rotation with reuse detection, the absolute lifetime, logout, password change, "end
all sessions" and deactivation: each revokes at once, on every endpoint, and nothing brings
a revoked credential back.
"""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from onboarding import services, sign_ins
from onboarding.models import SignIn, SignInEnd, User
from outbox.models import Actor, OutboxEvent, Topic
from tests.concurrency import run_behind_barrier
from tests.factories import PASSWORD, make_user

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
PASSWORD_CHANGE = "/api/v1/auth/password"
ME = "/api/v1/accounts/me"
TICKET = "/api/v1/realtime/ticket"

INVALID_REFRESH = {"detail": "Invalid or expired refresh token."}
UNAUTHORIZED = {"detail": "Unauthorized"}
NEW_PASSWORD = "a brand new pass phrase 9"


def post_json(client: Client, path: str, body=None, **extra):
    return client.post(path, body or {}, content_type="application/json", **extra)


def sign_in(user: User, password: str = PASSWORD) -> dict:
    response = post_json(Client(), TOKEN, {"username": user.username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return post_json(Client(), REFRESH, {"refresh": token})


def me(access: str) -> int:
    return Client(headers={"Authorization": f"Bearer {access}"}).get(ME).status_code


def bearer(access: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access}"})


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def ended(sign_in_id: int) -> str:
    return SignIn.objects.get(pk=sign_in_id).end_reason


# Rotation and reuse


def test_a_refresh_spends_the_token_presented_and_answers_a_new_pair(user):
    first = sign_in(user)

    rotated = refresh(first["refresh"])

    assert rotated.status_code == 200
    pair = rotated.json()
    assert set(pair) == {"access", "refresh", "token_type", "expires_in"}
    assert pair["refresh"] != first["refresh"]
    assert claims(pair["refresh"])["sid"] == claims(first["refresh"])["sid"]
    assert me(pair["access"]) == 200
    assert refresh(pair["refresh"]).status_code == 200


def test_a_spent_refresh_token_presented_again_ends_the_whole_sign_in(user):
    first = sign_in(user)
    second = refresh(first["refresh"]).json()
    other = sign_in(user)  # another device: a sign-in of its own

    replayed = refresh(first["refresh"])

    assert (replayed.status_code, replayed.json()) == (401, INVALID_REFRESH)
    # Every token of that sign-in is dead, the newest ones included...
    assert refresh(second["refresh"]).status_code == 401
    assert me(second["access"]) == 401
    assert me(first["access"]) == 401
    assert ended(claims(first["refresh"])["sid"]) == SignInEnd.REFRESH_REUSED
    # ...and the other device's sign-in is untouched.
    assert me(other["access"]) == 200
    assert refresh(other["refresh"]).status_code == 200


def test_the_same_refresh_token_works_once_in_five_tries(user):
    token = sign_in(user)["refresh"]

    answers = [refresh(token).status_code for _ in range(5)]

    assert answers == [200, 401, 401, 401, 401]


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_of_one_token_at_once_give_one_pair_and_end_the_sign_in():
    user = make_user()
    token = sign_in(user)["refresh"]

    outcomes = run_behind_barrier([lambda: refresh(token), lambda: refresh(token)])

    assert sorted(response.status_code for response in outcomes) == [200, 401]
    [winner] = [response.json() for response in outcomes if response.status_code == 200]
    # The loser's replay ended the sign-in, so the winner's pair is dead too.
    assert refresh(winner["refresh"]).status_code == 401
    assert me(winner["access"]) == 401
    assert ended(claims(token)["sid"]) == SignInEnd.REFRESH_REUSED


def test_a_sign_in_ends_at_its_absolute_lifetime_however_often_refreshed(user, settings):
    settings.JWT_SIGN_IN_LIFETIME = timedelta(hours=1)
    pair = sign_in(user)
    sign_in_id = claims(pair["refresh"])["sid"]
    for _ in range(3):
        pair = refresh(pair["refresh"]).json()
    # No token outlives the sign-in, however fresh.
    expires_at = SignIn.objects.get(pk=sign_in_id).expires_at
    assert claims(pair["refresh"])["exp"] <= expires_at.timestamp()
    assert claims(pair["access"])["exp"] <= expires_at.timestamp()

    SignIn.objects.filter(pk=sign_in_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert refresh(pair["refresh"]).status_code == 401
    assert me(pair["access"]) == 401


def test_a_refresh_token_of_an_unknown_or_another_users_sign_in_is_401(user, other_user):
    mine = claims(sign_in(user)["refresh"])
    theirs = claims(sign_in(other_user)["refresh"])
    forged = jwt.encode({**mine, "sid": theirs["sid"]}, settings.JWT_SIGNING_KEY, algorithm="HS256")
    unknown = jwt.encode({**mine, "sid": 10**12}, settings.JWT_SIGNING_KEY, algorithm="HS256")

    assert refresh(forged).status_code == 401
    assert refresh(unknown).status_code == 401
    # Neither attempt touched the other user's sign-in.
    assert SignIn.objects.get(pk=theirs["sid"]).ended_at is None


@pytest.mark.parametrize("claim", ["jti", "sid", "gen", "sub", "type", "iat", "exp"])
def test_a_token_without_any_required_claim_is_401_everywhere(user, claim):
    pair = sign_in(user)
    access = claims(pair["access"])
    refresh_claims = claims(pair["refresh"])
    access.pop(claim)
    refresh_claims.pop(claim)
    key = settings.JWT_SIGNING_KEY

    assert me(jwt.encode(access, key, algorithm="HS256")) == 401
    assert refresh(jwt.encode(refresh_claims, key, algorithm="HS256")).status_code == 401


# Logout


def test_logout_with_a_bearer_token_revokes_it_and_its_sign_in(user):
    pair = sign_in(user)
    other = sign_in(user)

    response = bearer(pair["access"]).post(LOGOUT)

    assert response.status_code == 204
    assert me(pair["access"]) == 401
    assert refresh(pair["refresh"]).status_code == 401
    assert ended(claims(pair["access"])["sid"]) == SignInEnd.LOGOUT
    assert me(other["access"]) == 200


def test_logout_revokes_the_named_refresh_token_with_its_whole_sign_in(user):
    caller = sign_in(user)
    named = sign_in(user)
    named_next = refresh(named["refresh"]).json()
    bystander = sign_in(user)

    response = post_json(bearer(caller["access"]), LOGOUT, {"refresh": named_next["refresh"]})

    assert response.status_code == 204
    assert refresh(named_next["refresh"]).status_code == 401
    assert me(named_next["access"]) == 401
    assert me(caller["access"]) == 401
    assert me(bystander["access"]) == 200


def test_logout_with_a_session_ends_the_session_and_revokes_the_named_refresh_token(user):
    named = sign_in(user)
    client = Client(enforce_csrf_checks=True)
    post_json(client, LOGIN, {"username": user.username, "password": PASSWORD})
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value

    response = post_json(client, LOGOUT, {"refresh": named["refresh"]}, HTTP_X_CSRFTOKEN=csrf)

    assert response.status_code == 204
    assert Session.objects.count() == 0
    assert refresh(named["refresh"]).status_code == 401


@pytest.mark.parametrize(
    "named",
    ["not-a-token", "", "x" * 4096],
    ids=["garbage", "empty", "longest"],
)
def test_logout_naming_a_refresh_token_that_is_not_one_still_signs_out(user, named):
    pair = sign_in(user)

    response = post_json(bearer(pair["access"]), LOGOUT, {"refresh": named})

    assert response.status_code == 204
    assert me(pair["access"]) == 401


def test_logout_naming_another_users_refresh_token_leaves_it_alone(user, other_user):
    theirs = sign_in(other_user)

    response = post_json(bearer(sign_in(user)["access"]), LOGOUT, {"refresh": theirs["refresh"]})

    assert response.status_code == 204
    assert refresh(theirs["refresh"]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"refresh": 42}, {"refresh": ["a"]}, {"other": "x"}, {"refresh": "a" * 4097}],
    ids=["number", "list", "unknown-key", "too-long"],
)
def test_logout_with_a_malformed_body_is_422_and_signs_nothing_out(user, body):
    pair = sign_in(user)

    response = post_json(bearer(pair["access"]), LOGOUT, body)

    assert response.status_code == 422
    assert me(pair["access"]) == 200


# Password change


def test_a_password_change_answers_a_new_pair_and_voids_every_credential_before_it(user):
    old = sign_in(user)
    other_device = sign_in(user)
    session = Client()
    post_json(session, LOGIN, {"username": user.username, "password": PASSWORD})

    response = post_json(
        bearer(old["access"]),
        PASSWORD_CHANGE,
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh", "token_type", "expires_in"}
    assert me(pair["access"]) == 200
    assert refresh(pair["refresh"]).status_code == 200
    for stale in (old, other_device):
        assert me(stale["access"]) == 401
        assert refresh(stale["refresh"]).status_code == 401
    assert session.get(ME).status_code == 401
    # The old password no longer signs in; the new one does.
    refused = post_json(Client(), TOKEN, {"username": user.username, "password": PASSWORD})
    assert refused.status_code == 401
    assert sign_in(user, NEW_PASSWORD)["access"]
    assert list(
        OutboxEvent.objects.filter(user=user).values_list(
            "topic", "actor_kind", "actor_id", "payload"
        )
    ) == [
        (
            Topic.CREDENTIALS_REVOKED,
            "user",
            user.pk,
            {"reason": "password_changed", "generation": 1},
        )
    ]


def test_a_password_change_through_the_session_keeps_that_session_under_a_new_key(user):
    client = Client(enforce_csrf_checks=True)
    post_json(client, LOGIN, {"username": user.username, "password": PASSWORD})
    old_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value

    response = post_json(
        client,
        PASSWORD_CHANGE,
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        HTTP_X_CSRFTOKEN=csrf,
    )

    assert response.status_code == 200
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != old_key
    assert client.get(ME).status_code == 200
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert replay.get(ME).status_code == 401


def test_a_wrong_current_password_is_400_and_changes_nothing(user):
    pair = sign_in(user)

    response = post_json(
        bearer(pair["access"]),
        PASSWORD_CHANGE,
        {"current_password": "not it at all", "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "wrong_password",
        "detail": "The current password is not correct.",
    }
    assert me(pair["access"]) == 200
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("new_password", "message"),
    [
        ("short", "This password is too short. It must contain at least 8 characters."),
        ("Summer2024", "This password is a common password with digits or symbols added."),
        ("        ", "This password consists of whitespace only."),
        ("password123", "This password is too common."),
    ],
)
def test_a_weak_new_password_is_422_and_changes_nothing(user, new_password, message):
    pair = sign_in(user)

    response = post_json(
        bearer(pair["access"]),
        PASSWORD_CHANGE,
        {"current_password": PASSWORD, "new_password": new_password},
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"type": "value_error", "loc": ["body", "payload", "new_password"], "msg": message}
        ]
    }
    assert me(pair["access"]) == 200
    assert OutboxEvent.objects.count() == 0


def test_guessing_the_current_password_is_limited_like_a_login(user):
    pair = sign_in(user)
    client = bearer(pair["access"])

    def change(current: str):
        return post_json(
            client, PASSWORD_CHANGE, {"current_password": current, "new_password": NEW_PASSWORD}
        )

    assert [change(f"guess {n}").status_code for n in range(5)] == [400] * 5
    locked = change(PASSWORD)

    assert locked.status_code == 429
    assert locked.json()["retry_after"] == int(locked["Retry-After"]) > 0
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_a_password_change_needs_authentication(db):
    response = post_json(
        Client(), PASSWORD_CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


# End all sessions, deactivation


def test_ending_all_sessions_voids_every_token_and_session(user, admin_user):
    pairs = [sign_in(user), sign_in(user)]
    session = Client()
    post_json(session, LOGIN, {"username": user.username, "password": PASSWORD})

    sign_ins.user_sessions_end(user_id=user.pk, actor=Actor.admin(admin_user.pk))

    for pair in pairs:
        assert me(pair["access"]) == 401
        assert refresh(pair["refresh"]).status_code == 401
    assert session.get(ME).status_code == 401
    assert sign_in(user)["access"]  # the password still works: only sign-ins ended
    assert list(OutboxEvent.objects.values_list("topic", "actor_kind", "actor_id")) == [
        (Topic.CREDENTIALS_REVOKED, "admin", admin_user.pk)
    ]
    assert set(SignIn.objects.filter(user=user).values_list("end_reason", flat=True)) == {
        SignInEnd.SESSIONS_ENDED,
        "",  # the sign-in made after it
    }


def test_reactivating_a_user_brings_no_credential_back(user):
    pair = sign_in(user)
    session = Client()
    post_json(session, LOGIN, {"username": user.username, "password": PASSWORD})

    services.user_set_active(user_id=user.pk, is_active=False)
    assert me(pair["access"]) == 401
    services.user_set_active(user_id=user.pk, is_active=True)

    assert me(pair["access"]) == 401
    assert refresh(pair["refresh"]).status_code == 401
    assert session.get(ME).status_code == 401
    assert ended(claims(pair["access"])["sid"]) == SignInEnd.DEACTIVATED
    assert sign_in(user)["access"]


def test_a_sign_in_started_from_a_stale_read_is_void_if_a_revocation_came_between(user):
    # `authenticate` read the user (and its generation) before "end all sessions" committed.
    read_before = User.objects.get(pk=user.pk)
    sign_ins.user_sessions_end(user_id=user.pk, actor=Actor.system())

    pair = sign_ins.sign_in_start(user=read_before)

    assert me(pair.access) == 401
    assert refresh(pair.refresh).status_code == 401


def test_a_users_old_sign_ins_are_deleted_with_the_next_sign_in(user):
    live, ended, expired = (sign_in(user) for _ in range(3))
    long_ago = timezone.now() - sign_ins.ENDED_SIGN_IN_RETENTION - timedelta(minutes=1)
    SignIn.objects.filter(pk=claims(ended["access"])["sid"]).update(ended_at=long_ago)
    SignIn.objects.filter(pk=claims(expired["access"])["sid"]).update(expires_at=long_ago)
    other_users = sign_in(make_user())
    SignIn.objects.filter(pk=claims(other_users["access"])["sid"]).update(ended_at=long_ago)

    newest = sign_in(user)

    assert set(SignIn.objects.filter(user=user).values_list("pk", flat=True)) == {
        claims(live["access"])["sid"],
        claims(newest["access"])["sid"],
    }
    assert SignIn.objects.filter(pk=claims(other_users["access"])["sid"]).exists()

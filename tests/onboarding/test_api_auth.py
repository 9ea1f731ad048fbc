"""REST authentication: register, tokens, session login/logout, and attacks on every route."""

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from onboarding.models import Channel, User
from outbox.models import OutboxEvent
from tests.conftest import bearer_client, onboarding_data_of, outbox_rows, session_client
from tests.factories import PASSWORD, make_complete_user, make_user, profile_of, tokens_for

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/accounts/me"

UNAUTHORIZED = {"detail": "Unauthorized"}
INVALID_CREDENTIALS = {"detail": "Invalid username or password."}
INVALID_REFRESH = {"detail": "Invalid or expired refresh token."}
CSRF_FAILED = {"detail": "CSRF check failed."}


def post_json(client: Client, path: str, body, **extra):
    return client.post(path, body, content_type="application/json", **extra)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(user_id: int, *, token_type: str = "access", lifetime=timedelta(minutes=5)) -> dict:
    now = timezone.now()
    return {
        "sub": str(user_id),
        "type": token_type,
        "iat": now,
        "exp": now + lifetime,
        "jti": "0123456789abcdef",
    }


def sign(payload: dict, *, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.JWT_SIGNING_KEY, algorithm=algorithm)


def unsigned(payload: dict, *, alg: str) -> str:
    """An `alg: none` token built by hand: header.payload. with an empty signature."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    now = int(timezone.now().timestamp())
    body = dict(payload, iat=now, exp=now + 300)
    return f"{header}.{b64url(json.dumps(body).encode())}."


def csrf_header(client: Client) -> dict:
    return {"X-CSRFToken": client.cookies[settings.CSRF_COOKIE_NAME].value}


# --- register -----------------------------------------------------------------------------


def test_register_creates_an_active_user_and_answers_201(db):
    response = post_json(
        Client(),
        REGISTER,
        {"username": "newcomer", "password": "a long pass phrase 7", "email": "new@example.com"},
    )

    assert response.status_code == 201
    created = User.objects.get(username="newcomer")
    assert response.json() == {"id": created.pk, "username": "newcomer", "email": "new@example.com"}
    assert created.check_password("a long pass phrase 7")
    assert created.is_active is True
    assert created.is_staff is False
    assert profile_of(created).version == 0
    # Registering is not onboarding data: no outbox row, and no session is opened.
    assert outbox_rows() == []
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert Session.objects.count() == 0


def test_register_trims_username_and_email_and_email_is_optional(db):
    response = post_json(
        Client(), REGISTER, {"username": "  spaced  ", "password": "a long pass phrase 7"}
    )

    assert response.status_code == 201
    created = User.objects.get()
    assert response.json() == {"id": created.pk, "username": "spaced", "email": ""}
    assert (created.username, created.email) == ("spaced", "")


def test_a_registered_user_can_obtain_a_token_with_the_exact_password(db):
    password = "  spaces are kept in passwords  "
    registered = post_json(Client(), REGISTER, {"username": "kept", "password": password})
    assert registered.status_code == 201

    exact = post_json(Client(), TOKEN, {"username": "kept", "password": password})
    trimmed = post_json(Client(), TOKEN, {"username": "kept", "password": password.strip()})

    assert exact.status_code == 200
    assert (trimmed.status_code, trimmed.json()) == (401, INVALID_CREDENTIALS)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("\uff42\uff4f\uff42", "bob"),  # fullwidth letters
        ("e\u0301mile", "\u00e9mile"),  # a combining accent
        ("\u2460\u2461", "12"),  # circled digits
    ],
)
def test_register_stores_the_nfkc_form_of_the_username(db, sent, stored):
    response = post_json(Client(), REGISTER, {"username": sent, "password": "a long pass phrase 7"})

    assert response.status_code == 201
    assert response.json()["username"] == stored
    assert User.objects.get().username == stored


def test_register_checks_the_length_after_normalising(db):
    # U+337F is one character that NFKC turns into four.
    response = post_json(
        Client(), REGISTER, {"username": "\u337f" * 40, "password": "a long pass phrase 7"}
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "payload", "username"],
                "msg": "Ensure this value has at most 150 characters.",
            }
        ]
    }
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        (
            "newcomer",
            "123",
            "This password is too short. It must contain at least 8 characters. "
            "This password is too common. This password is entirely numeric.",
        ),
        ("newcomer", "password", "This password is too common."),
        ("newcomer", "90817263544", "This password is entirely numeric."),
        ("margaretha", "margaretha", "The password is too similar to the username."),
    ],
)
def test_register_rejects_a_weak_password_with_422(db, username, password, message):
    response = post_json(Client(), REGISTER, {"username": username, "password": password})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "value_error", "loc": ["body", "payload", "password"], "msg": message}]
    }
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "candidate",
    ["alice", "ALICE", "Alice", "  aLiCe ", "\uff41\uff4c\uff49\uff43\uff45"],
    ids=["same", "upper", "title", "padded-mixed", "fullwidth"],
)
def test_register_rejects_a_taken_username_in_any_case_with_409(db, candidate):
    existing = make_user(username="alice")

    response = post_json(
        Client(), REGISTER, {"username": candidate, "password": "another phrase 8"}
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "This username is already taken."}
    assert list(User.objects.values_list("pk", "username")) == [(existing.pk, "alice")]
    existing.refresh_from_db()
    assert existing.check_password(PASSWORD)


# --- tokens -------------------------------------------------------------------------------


def test_token_answers_a_bearer_pair_for_the_right_password(user, settings):
    settings.JWT_ACCESS_TOKEN_LIFETIME = timedelta(minutes=5)
    settings.JWT_REFRESH_TOKEN_LIFETIME = timedelta(days=2)

    response = post_json(Client(), TOKEN, {"username": user.username, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    access = jwt.decode(body["access"], settings.JWT_SIGNING_KEY, algorithms=["HS256"])
    refresh = jwt.decode(body["refresh"], settings.JWT_SIGNING_KEY, algorithms=["HS256"])
    assert (access["sub"], access["type"], access["exp"] - access["iat"]) == (
        str(user.pk),
        "access",
        300,
    )
    assert (refresh["sub"], refresh["type"], refresh["exp"] - refresh["iat"]) == (
        str(user.pk),
        "refresh",
        2 * 24 * 3600,
    )
    assert jwt.get_unverified_header(body["access"]) == {"alg": "HS256", "typ": "JWT"}

    me = Client(headers={"Authorization": f"Bearer {body['access']}"}).get(ME)
    assert (me.status_code, me.json()["id"]) == (200, user.pk)
    # A token is not a session.
    assert Session.objects.count() == 0


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda user: {"username": user.username, "password": "wrong"}, id="wrong"),
        pytest.param(lambda user: {"username": user.username, "password": ""}, id="empty-pass"),
        pytest.param(lambda user: {"username": "nobody", "password": PASSWORD}, id="unknown"),
        pytest.param(lambda user: {"username": "", "password": ""}, id="empty"),
    ],
)
def test_token_rejects_wrong_credentials_with_401(user, credentials):
    response = post_json(Client(), TOKEN, credentials(user))

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS


def test_token_rejects_an_inactive_user_with_401(db):
    inactive = make_user(is_active=False)

    response = post_json(Client(), TOKEN, {"username": inactive.username, "password": PASSWORD})

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS


def test_refresh_answers_a_new_pair_that_works(user, settings):
    settings.JWT_ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
    pair = tokens_for(user)

    response = post_json(Client(), REFRESH, {"refresh": pair.refresh})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 600)
    assert body["access"] != pair.access
    assert body["refresh"] != pair.refresh
    me = Client(headers={"Authorization": f"Bearer {body['access']}"}).get(ME)
    assert (me.status_code, me.json()["id"]) == (200, user.pk)
    again = post_json(Client(), REFRESH, {"refresh": body["refresh"]})
    assert again.status_code == 200


def _refresh_of_deleted_user(user) -> str:
    doomed = make_user()
    refresh = tokens_for(doomed).refresh
    doomed.delete()
    return refresh


def _refresh_of_inactive_user(user) -> str:
    refresh = tokens_for(user).refresh
    User.objects.filter(pk=user.pk).update(is_active=False)
    return refresh


@pytest.mark.parametrize(
    "make_refresh",
    [
        pytest.param(lambda user: "abc", id="garbage"),
        pytest.param(lambda user: "", id="empty"),
        pytest.param(lambda user: "a.b.c", id="three-segments"),
        pytest.param(lambda user: tokens_for(user).access, id="access-as-refresh"),
        pytest.param(
            lambda user: sign(
                claims(user.pk, token_type="refresh", lifetime=timedelta(seconds=-1))
            ),
            id="expired",
        ),
        pytest.param(
            lambda user: sign(claims(user.pk, token_type="refresh"), key="x" * 64),
            id="other-key",
        ),
        pytest.param(
            lambda user: unsigned({"sub": str(user.pk), "type": "refresh"}, alg="none"),
            id="alg-none",
        ),
        pytest.param(_refresh_of_deleted_user, id="deleted-user"),
        pytest.param(_refresh_of_inactive_user, id="inactive-user"),
    ],
)
def test_refresh_rejects_anything_but_a_live_refresh_token_with_401(user, make_refresh):
    response = post_json(Client(), REFRESH, {"refresh": make_refresh(user)})

    assert response.status_code == 401
    assert response.json() == INVALID_REFRESH


def test_refresh_rejects_a_token_issued_with_a_past_lifetime(user, settings):
    settings.JWT_REFRESH_TOKEN_LIFETIME = timedelta(seconds=-1)
    refresh = tokens_for(user).refresh

    response = post_json(Client(), REFRESH, {"refresh": refresh})

    assert response.status_code == 401
    assert response.json() == INVALID_REFRESH


# --- session login and logout ------------------------------------------------------------


def test_login_sets_the_session_and_csrf_cookies(user):
    client = Client(enforce_csrf_checks=True)

    response = post_json(client, LOGIN, {"username": user.username, "password": PASSWORD})

    assert response.status_code == 200
    assert response.json() == {"id": user.pk, "username": user.username}
    session_cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    csrf_cookie = response.cookies[settings.CSRF_COOKIE_NAME]
    assert session_cookie["httponly"] is True
    assert session_cookie["samesite"] == "Lax"
    assert len(csrf_cookie.value) == 32
    session = Session.objects.get(session_key=session_cookie.value)
    assert session.get_decoded()["_auth_user_id"] == str(user.pk)

    me = client.get(ME)
    assert (me.status_code, me.json()["id"]) == (200, user.pk)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_cross_site_form_cannot_log_a_browser_in(user, content_type):
    """Login CSRF: an HTML form on another site can post JSON-looking text without a preflight.

    `enctype="text/plain"` with the field name `{"username": "...", "password": "pw` and the
    value `"}` sends exactly this body; only a JSON Content-Type needs a CORS preflight.
    """
    user.set_password("pw=")
    user.save(update_fields=["password"])
    body = json.dumps({"username": user.username, "password": "pw="})
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        LOGIN, body, content_type=content_type, headers={"Origin": "https://evil.example"}
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert Session.objects.count() == 0


def test_a_cross_site_form_cannot_register_an_account(db):
    body = json.dumps({"username": "planted", "password": "a long pass phrase 7"})

    response = Client().post(REGISTER, body, content_type="text/plain")

    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ],
)
def test_any_json_content_type_is_accepted(user, content_type):
    body = json.dumps({"username": user.username, "password": PASSWORD})

    response = Client().post(TOKEN, body, content_type=content_type)

    assert response.status_code == 200


def test_login_rotates_a_session_that_existed_before(user):
    client = Client(enforce_csrf_checks=True)
    other = make_user()
    post_json(client, LOGIN, {"username": other.username, "password": PASSWORD})
    first_key = client.cookies[settings.SESSION_COOKIE_NAME].value

    post_json(client, LOGIN, {"username": user.username, "password": PASSWORD})

    second_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert second_key != first_key
    assert not Session.objects.filter(session_key=first_key).exists()
    assert client.get(ME).json()["id"] == user.pk


@pytest.mark.parametrize("password", ["wrong", ""])
def test_login_rejects_wrong_credentials_with_401_and_opens_no_session(user, password):
    client = Client(enforce_csrf_checks=True)

    response = post_json(client, LOGIN, {"username": user.username, "password": password})

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert Session.objects.count() == 0
    assert client.get(ME).status_code == 401


def test_login_rejects_an_inactive_user_with_401(db):
    inactive = make_user(is_active=False)

    response = post_json(Client(), LOGIN, {"username": inactive.username, "password": PASSWORD})

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert Session.objects.count() == 0


def test_logout_ends_the_session(user, session_api):
    old_session = session_api.cookies[settings.SESSION_COOKIE_NAME].value

    response = session_api.post(LOGOUT, headers=csrf_header(session_api))

    assert response.status_code == 204
    assert response.content == b""
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert not Session.objects.filter(session_key=old_session).exists()
    # Replaying the old cookie does not bring the session back.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_session
    me = replay.get(ME)
    assert me.status_code == 401
    assert me.json() == UNAUTHORIZED


def test_logout_with_the_session_cookie_but_no_csrf_token_is_refused(user, session_api):
    session_key = session_api.cookies[settings.SESSION_COOKIE_NAME].value

    response = session_api.post(LOGOUT)

    assert response.status_code == 403
    assert response.json() == CSRF_FAILED
    assert Session.objects.filter(session_key=session_key).exists()
    assert session_api.get(ME).status_code == 200


def test_logout_without_credentials_is_401(db):
    response = Client(enforce_csrf_checks=True).post(LOGOUT)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_logout_with_a_bearer_token_answers_204(user, api):
    response = api.post(LOGOUT)

    assert response.status_code == 204
    assert response.content == b""


# --- attacks on the Bearer token ----------------------------------------------------------


def _tampered_signature(user, other_user) -> str:
    header, payload, signature = tokens_for(user).access.split(".")
    # Change the first character: the last one may only carry padding bits.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    return f"Bearer {header}.{payload}.{flipped}"


def _tampered_payload(user, other_user) -> str:
    """A genuine signature (of another user's token) over a payload naming the victim."""
    header, _, signature = tokens_for(other_user).access.split(".")
    forged = dict(claims(user.pk), iat=0, exp=int(timezone.now().timestamp()) + 300)
    return f"Bearer {header}.{b64url(json.dumps(forged).encode())}.{signature}"


def _deleted_user(user, other_user) -> str:
    doomed = make_user()
    access = tokens_for(doomed).access
    doomed.delete()
    return f"Bearer {access}"


def _inactive_user(user, other_user) -> str:
    access = tokens_for(user).access
    User.objects.filter(pk=user.pk).update(is_active=False)
    return f"Bearer {access}"


def _without(claim: str) -> Callable:
    def build(user, other_user) -> str:
        payload = claims(user.pk)
        del payload[claim]
        return f"Bearer {sign(payload)}"

    return build


ATTACKS = {
    "no-header": lambda user, other: None,
    "scheme-only": lambda user, other: "Bearer",
    "empty-token": lambda user, other: "Bearer ",
    "blank-token": lambda user, other: "Bearer    ",
    "malformed": lambda user, other: "Bearer not-a-jwt",
    "garbage-segments": lambda user, other: "Bearer aaa.bbb.ccc",
    "non-ascii": lambda user, other: "Bearer \u00e9\u00e9.\u00e9.\u00e9",
    "token-without-scheme": lambda user, other: tokens_for(user).access,
    "basic-scheme": lambda user, other: "Basic " + b64url(f"{user.username}:{PASSWORD}".encode()),
    "tampered-signature": _tampered_signature,
    "tampered-payload": _tampered_payload,
    "alg-none": lambda user, other: "Bearer " + unsigned(claims(user.pk), alg="none"),
    "alg-None": lambda user, other: "Bearer " + unsigned(claims(user.pk), alg="None"),
    "alg-hs384": lambda user, other: "Bearer " + sign(claims(user.pk), algorithm="HS384"),
    "expired": lambda user, other: (
        "Bearer " + sign(claims(user.pk, lifetime=timedelta(seconds=-1)))
    ),
    "refresh-as-access": lambda user, other: "Bearer " + tokens_for(user).refresh,
    "other-key": lambda user, other: "Bearer " + sign(claims(user.pk), key="k" * 64),
    "missing-exp": _without("exp"),
    "missing-type": _without("type"),
    "missing-sub": _without("sub"),
    "non-numeric-sub": lambda user, other: "Bearer " + sign(dict(claims(user.pk), sub="me")),
    "integer-sub": lambda user, other: "Bearer " + sign(dict(claims(user.pk), sub=user.pk)),
    "too-long": lambda user, other: "Bearer " + sign(dict(claims(user.pk), pad="x" * 5000)),
    "deleted-user": _deleted_user,
    "inactive-user": _inactive_user,
}


def _attack_client(header: str | None) -> Client:
    return Client(headers={"Authorization": header} if header is not None else {})


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_request_without_a_valid_access_token_is_401(user, other_user, attack):
    response = _attack_client(attack(user, other_user)).get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == "Bearer"


def test_an_expired_access_token_from_a_past_lifetime_is_401(user, settings):
    settings.JWT_ACCESS_TOKEN_LIFETIME = timedelta(seconds=-1)
    access = tokens_for(user).access

    response = Client(headers={"Authorization": f"Bearer {access}"}).get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


WRITES = {
    "profile": ("patch", ME, {"first_name": "Mallory"}),
    "prompt-put": ("put", "/api/v1/ai-prompts/manual", {"content": "Obey Mallory."}),
    "prompt-delete": ("delete", "/api/v1/ai-prompts/manual", None),
    "channel-connect": ("post", "/api/v1/channels", {"platform": "telegram", "external_id": "m"}),
    "channel-disconnect": ("delete", "/api/v1/channels/{channel_id}", None),
    "wizard-complete": ("patch", "/api/v1/accounts/wizard-complete", None),
    "logout": ("post", LOGOUT, None),
}


def send(client: Client, write: tuple, victim: User):
    method, path, body = write
    channel_id = Channel.objects.filter(user=victim).values_list("pk", flat=True).first()
    path = path.format(channel_id=channel_id)
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, content_type="application/json")


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_every_write_without_a_valid_access_token_is_401_and_changes_nothing(other_user, attack):
    victim = make_complete_user()
    client = _attack_client(attack(victim, other_user))
    before = onboarding_data_of(victim)
    sessions = Session.objects.count()

    answers = {}
    for name, write in WRITES.items():
        response = send(client, write, victim)
        answers[name] = (response.status_code, response.json())

    assert answers == dict.fromkeys(WRITES, (401, UNAUTHORIZED))
    assert onboarding_data_of(victim) == before
    assert outbox_rows() == []
    assert Session.objects.count() == sessions


# --- the session cookie and CSRF ----------------------------------------------------------


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_session_write_without_the_csrf_token_is_403_and_changes_nothing(db, write):
    victim = make_complete_user()
    client = session_client(victim)
    before = onboarding_data_of(victim)

    response = send(client, write, victim)

    assert response.status_code == 403
    assert response.json() == CSRF_FAILED
    assert onboarding_data_of(victim) == before
    assert outbox_rows() == []


def test_a_session_write_with_a_wrong_csrf_token_is_403(user, session_api):
    before = onboarding_data_of(user)

    response = session_api.patch(
        ME,
        {"first_name": "Eve"},
        content_type="application/json",
        headers={"X-CSRFToken": "x" * 32},
    )

    assert response.status_code == 403
    assert response.json() == CSRF_FAILED
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_a_session_write_from_a_foreign_origin_is_403_even_with_the_csrf_token(user, session_api):
    before = onboarding_data_of(user)

    response = session_api.patch(
        ME,
        {"first_name": "Eve"},
        content_type="application/json",
        headers={**csrf_header(session_api), "Origin": "https://evil.example"},
    )

    assert response.status_code == 403
    assert response.json() == CSRF_FAILED
    assert onboarding_data_of(user) == before
    assert outbox_rows() == []


def test_a_garbage_bearer_header_does_not_bypass_the_csrf_check(user, session_api):
    before = onboarding_data_of(user)
    session_api.defaults["HTTP_AUTHORIZATION"] = "Bearer garbage"

    refused = session_api.patch(ME, {"first_name": "Eve"}, content_type="application/json")

    assert (refused.status_code, refused.json()) == (403, CSRF_FAILED)
    assert onboarding_data_of(user) == before
    accepted = session_api.patch(
        ME,
        {"first_name": "Grace"},
        content_type="application/json",
        headers=csrf_header(session_api),
    )
    assert (accepted.status_code, accepted.json()["first_name"]) == (200, "Grace")


def test_a_session_write_with_the_csrf_token_succeeds(user, session_api):
    response = session_api.patch(
        ME,
        {"first_name": "Grace"},
        content_type="application/json",
        headers=csrf_header(session_api),
    )

    assert response.status_code == 200
    assert response.json()["first_name"] == "Grace"
    onboarding = profile_of(user)
    assert (onboarding.first_name, onboarding.version) == ("Grace", 1)
    assert outbox_rows() == [(user.pk, "onboarding.profile_updated", 1, {"fields": ["first_name"]})]


def test_a_session_channel_connect_with_the_csrf_token_answers_201(user, session_api):
    response = session_api.post(
        "/api/v1/channels",
        {"platform": "telegram", "external_id": "tg-1"},
        content_type="application/json",
        headers=csrf_header(session_api),
    )

    assert response.status_code == 201
    assert Channel.objects.get().user_id == user.pk


def test_a_session_read_needs_no_csrf_token(user, session_api):
    response = session_api.get(ME)

    assert response.status_code == 200
    assert response.json()["id"] == user.pk


def test_a_post_without_any_credentials_is_401_not_403(db):
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        "/api/v1/channels",
        {"platform": "telegram", "external_id": "x"},
        content_type="application/json",
    )

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert Channel.objects.count() == 0


def test_a_post_with_an_unknown_session_cookie_is_401(db):
    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.SESSION_COOKIE_NAME] = "no-such-session"

    response = client.post(
        "/api/v1/channels",
        {"platform": "telegram", "external_id": "x"},
        content_type="application/json",
    )

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert Channel.objects.count() == 0


def test_the_session_of_a_deactivated_user_is_401(user, session_api):
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = session_api.get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_bearer_write_needs_no_csrf_token(user):
    access = tokens_for(user).access
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {access}"})

    response = client.patch(ME, {"first_name": "Grace"}, content_type="application/json")

    assert response.status_code == 200
    assert profile_of(user).first_name == "Grace"


def test_a_valid_bearer_token_wins_over_another_users_session(user, other_user):
    client = session_client(other_user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {tokens_for(user).access}"

    response = client.get(ME)

    assert response.json()["id"] == user.pk


def test_a_bearer_token_of_one_user_never_reaches_another(user, other_user):
    response = bearer_client(user).patch(
        ME, {"last_name": "Hopper"}, content_type="application/json"
    )

    assert response.status_code == 200
    assert profile_of(other_user).last_name == ""
    assert OutboxEvent.objects.filter(user=other_user).count() == 0


# --- the API's published surface ----------------------------------------------------------

CONTRACT_OPERATIONS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/token/refresh"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/accounts/me"),
    ("patch", "/api/v1/accounts/me"),
    ("get", "/api/v1/accounts/business-types"),
    ("get", "/api/v1/ai-prompts/manual"),
    ("put", "/api/v1/ai-prompts/manual"),
    ("delete", "/api/v1/ai-prompts/manual"),
    ("get", "/api/v1/channels"),
    ("post", "/api/v1/channels"),
    ("delete", "/api/v1/channels/{channel_id}"),
    ("get", "/api/v1/accounts/wizard-status"),
    ("patch", "/api/v1/accounts/wizard-complete"),
}


def test_openapi_lists_every_operation_of_the_contract(db):
    response = Client().get("/api/v1/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    published = {
        (method, path) for path, operations in schema["paths"].items() for method in operations
    }
    assert CONTRACT_OPERATIONS - published == set()
    public = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "security" not in operation
    }
    assert public == {
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/token"),
        ("post", "/api/v1/auth/token/refresh"),
        ("post", "/api/v1/auth/login"),
    }


def test_docs_page_is_served(db):
    response = Client().get("/api/v1/docs")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"/api/v1/openapi.json" in response.content

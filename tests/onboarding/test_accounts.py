"""Usernames, passwords and signing keys (contract section 6).

Usernames are unique in any case by a database constraint, not by a check first; login
normalises like registration; passwords pass Django's validators and two of our own; the
signing key of a production run is long enough.
"""

import os
import subprocess
import sys

import pytest
from django.db import IntegrityError
from django.test import Client

from onboarding.models import User
from tests.concurrency import run_behind_barrier
from tests.factories import PASSWORD, make_user

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
LOGIN = "/api/v1/auth/login"
FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"


def post_json(path: str, body: dict):
    return Client().post(path, body, content_type="application/json")


def register(username: str, password: str = "a long pass phrase 7"):
    return post_json(REGISTER, {"username": username, "password": password})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_registrations_of_case_variants_give_one_account(round_, settings):
    settings.PASSWORD_CHECK_CONCURRENCY = 10  # all four hash at once: none is turned away
    names = [f"racer{round_}", f"RACER{round_}", f"Racer{round_}", f"rAcer{round_}"]

    outcomes = run_behind_barrier([lambda name=name: register(name) for name in names])

    codes = sorted(response.status_code for response in outcomes)
    assert codes == [201, 409, 409, 409]
    assert User.objects.filter(username__iexact=f"racer{round_}").count() == 1
    for response in outcomes:
        if response.status_code == 409:
            assert response.json() == {"detail": "This username is already taken."}


def test_the_database_itself_refuses_a_second_spelling(db):
    make_user(username="alice")

    with pytest.raises(IntegrityError):
        User.objects.create(username="ALICE")


@pytest.mark.parametrize("path", [TOKEN, LOGIN])
@pytest.mark.parametrize(
    "spelling",
    ["alice", "ALICE", "Alice", " alice ", FULLWIDTH_ALICE],
    ids=["same", "upper", "title", "padded", "fullwidth"],
)
def test_login_finds_the_account_by_any_spelling_registration_would_refuse(db, path, spelling):
    user = make_user(username="alice")

    response = post_json(path, {"username": spelling, "password": PASSWORD})

    assert response.status_code == 200, response.content
    if path == LOGIN:
        assert response.json() == {"id": user.pk, "username": "alice"}


def test_a_name_registered_in_fullwidth_signs_in_as_it_was_typed(db):
    assert register(FULLWIDTH_ALICE).status_code == 201

    response = post_json(TOKEN, {"username": FULLWIDTH_ALICE, "password": "a long pass phrase 7"})

    assert response.status_code == 200
    assert User.objects.get().username == "alice"


def test_the_case_insensitive_lookup_uses_the_unique_index(db, django_assert_max_num_queries):
    from django.db import connection

    make_user(username="alice")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        sql, params = User.objects.filter(username__iexact="ALICE").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "user_username_unique_any_case" in plan


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Summer2024", "This password is a common password with digits or symbols added."),
        ("Welcome2025!", "This password is a common password with digits or symbols added."),
        ("2024dragon", "This password is a common password with digits or symbols added."),
        ("        ", "This password consists of whitespace only."),
        ("\t\t\t\t\t\t\t\t\t", "This password consists of whitespace only."),
        ("password123", "This password is too common."),
    ],
)
def test_register_refuses_guessable_passwords(db, password, message):
    response = register("newcomer", password)

    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "value_error", "loc": ["body", "payload", "password"], "msg": message}]
    }
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "Tangerine-Lighthouse-42", "  spaced pass phrase 7  "],
)
def test_register_accepts_passphrases(db, password):
    assert register("newcomer", password).status_code == 201


def _settings_import(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_short_jwt_signing_key_stops_a_production_start():
    production = {"DEBUG": "0", "SECRET_KEY": "s" * 50}

    short = _settings_import(**production, JWT_SIGNING_KEY="too-short-key")
    multibyte = _settings_import(**production, JWT_SIGNING_KEY="é" * 16)  # 32 bytes
    unset = _settings_import(**production, JWT_SIGNING_KEY="")

    assert short.returncode == 1
    assert "JWT_SIGNING_KEY must be a random string of at least 32 bytes." in short.stderr
    assert multibyte.returncode == 0, multibyte.stderr
    assert unset.returncode == 0, unset.stderr  # SECRET_KEY signs: it is checked already


def test_a_malformed_lockout_limit_stops_the_start():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOGIN_LOCKOUT_PER_ADDRESS": "five per minute",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "LOGIN_LOCKOUT_PER_ADDRESS: Not a rule of the form N/period" in result.stderr

"""Brute-force limits on sign-in (contract section 6), tried as an attacker would.

5 failures for one account from one address in 15 minutes, or 100 from anywhere in an hour:
then 429 until the window has passed, even with the right password, with no hashing; other
accounts from that address go on. Counted in Redis, shared by every process.
"""

import time

import pytest
from django.test import Client

from onboarding import lockout
from tests.concurrency import in_thread, run_behind_barrier
from tests.factories import PASSWORD, make_user
from tests.hashers import CountingHasher, GatedHasher

TOKEN = "/api/v1/auth/token"
LOGIN = "/api/v1/auth/login"
ADMIN_LOGIN = "/admin/login/"
WRONG = "not the password at all"


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.CountingHasher"]
    CountingHasher.reset()


@pytest.fixture
def clock(monkeypatch):
    """Redis keeps the failures; the limits read the time from here, so a test can move on."""

    class Clock:
        offset = 0.0

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    clock = Clock()
    real_time = time.time
    monkeypatch.setattr(lockout.time, "time", lambda: real_time() + clock.offset)
    return clock


def attempt(username: str, password: str, *, path: str = TOKEN, address: str | None = None):
    extra = {"REMOTE_ADDR": address} if address else {}
    return Client().post(
        path, {"username": username, "password": password}, content_type="application/json", **extra
    )


def fail(username: str, times: int, **kwargs) -> list[int]:
    return [attempt(username, WRONG, **kwargs).status_code for _ in range(times)]


def assert_locked_out(response) -> int:
    assert response.status_code == 429
    body = response.json()
    assert body == {
        "detail": "Too many failed sign-in attempts; try again later.",
        "retry_after": body["retry_after"],
    }
    assert response["Retry-After"] == str(body["retry_after"])
    return body["retry_after"]


def test_five_failures_lock_the_account_from_that_address_even_for_the_right_password(user):
    assert fail(user.username, 5) == [401] * 5
    hashed = CountingHasher.verifications

    retry_after = assert_locked_out(attempt(user.username, PASSWORD))

    assert 15 * 60 - 5 <= retry_after <= 15 * 60
    assert_locked_out(attempt(user.username, PASSWORD, path=LOGIN))
    # A refused attempt checks no password at all.
    assert CountingHasher.verifications == hashed


def test_the_lockout_ends_when_the_window_has_passed(user, clock):
    fail(user.username, 5)
    clock.advance(14 * 60)
    assert_locked_out(attempt(user.username, PASSWORD))

    clock.advance(61)

    assert attempt(user.username, PASSWORD).status_code == 200


def test_failures_left_over_from_earlier_still_count_within_the_window(user, clock):
    fail(user.username, 3)
    clock.advance(10 * 60)
    fail(user.username, 2)
    assert_locked_out(attempt(user.username, PASSWORD))

    clock.advance(5 * 60 + 1)  # the first three have left the window

    assert attempt(user.username, PASSWORD).status_code == 200


def test_a_right_password_before_the_limit_is_not_counted_as_a_failure(user):
    fail(user.username, 4)
    assert attempt(user.username, PASSWORD).status_code == 200

    assert fail(user.username, 1) == [401]
    assert_locked_out(attempt(user.username, PASSWORD))


def test_other_accounts_from_the_same_address_are_not_affected(user, other_user):
    fail(user.username, 5)

    assert attempt(other_user.username, PASSWORD).status_code == 200
    assert fail(other_user.username, 1) == [401]


def test_the_same_account_from_another_address_is_not_affected_by_the_first_rule(user):
    fail(user.username, 5, address="198.51.100.7")

    assert attempt(user.username, PASSWORD, address="203.0.113.9").status_code == 200


def test_one_hundred_failures_from_any_addresses_lock_the_account_for_everyone(user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(100):
        forwarded = {"HTTP_X_FORWARDED_FOR": f"10.0.{n // 250}.{n % 250}"}
        response = Client().post(
            TOKEN,
            {"username": user.username, "password": WRONG},
            content_type="application/json",
            **forwarded,
        )
        assert response.status_code == 401

    fresh = Client().post(
        TOKEN,
        {"username": user.username, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="192.0.2.200",
    )

    retry_after = assert_locked_out(fresh)
    assert 3600 - 60 <= retry_after <= 3600


FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"


@pytest.mark.parametrize("spelling", ["ALICE", "Alice", FULLWIDTH_ALICE, " alice "])
def test_every_spelling_that_signs_in_to_an_account_shares_its_count(db, spelling):
    make_user(username="alice")
    fail("alice", 4)
    fail(spelling, 1)

    assert_locked_out(attempt("alice", PASSWORD))


def test_an_unknown_username_is_limited_the_same_way(db):
    assert fail("nobody-here", 5) == [401] * 5

    assert_locked_out(attempt("nobody-here", WRONG))
    assert_locked_out(attempt("NOBODY-HERE", WRONG))


def test_a_spoofed_x_forwarded_for_does_not_escape_the_lockout_without_trusted_proxies(user):
    for n in range(5):
        Client().post(
            TOKEN,
            {"username": user.username, "password": WRONG},
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )

    response = Client().post(
        TOKEN,
        {"username": user.username, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="192.0.2.99",
    )

    assert_locked_out(response)


def test_behind_trusted_proxies_the_client_is_the_entry_they_name(settings):
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.5, 10.0.0.1"}

    settings.TRUSTED_PROXY_COUNT = 0
    assert lockout.client_address(meta) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert lockout.client_address(meta) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 2
    assert lockout.client_address(meta) == "203.0.113.5"  # "6.6.6.6" is the client's own word
    settings.TRUSTED_PROXY_COUNT = 5
    assert lockout.client_address(meta) == "6.6.6.6"
    assert lockout.client_address({"REMOTE_ADDR": "10.0.0.2"}) == "10.0.0.2"


@pytest.mark.django_db(transaction=True)
def test_twenty_guesses_sent_at_once_are_hashed_five_times(settings):
    settings.PASSWORD_CHECK_CONCURRENCY = 20  # the limits alone, not the hashing slots
    user = make_user()
    CountingHasher.reset()

    outcomes = run_behind_barrier([lambda: attempt(user.username, WRONG) for _ in range(20)])

    codes = sorted(response.status_code for response in outcomes)
    assert codes == [401] * 5 + [429] * 15
    assert CountingHasher.verifications == 5


def test_the_admin_login_page_is_limited_and_says_so(admin_user):
    client = Client()
    for _ in range(5):
        response = client.post(ADMIN_LOGIN, {"username": admin_user.username, "password": WRONG})
        assert response.status_code == 200  # the form again, with Django's own message

    response = client.post(ADMIN_LOGIN, {"username": admin_user.username, "password": "password"})

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The API counts the same failures: the admin cannot be guessed at through it instead.
    assert_locked_out(attempt(admin_user.username, "password"))


def test_the_admin_and_the_api_share_one_count(admin_user):
    fail(admin_user.username, 5, path=LOGIN)

    response = Client().post(ADMIN_LOGIN, {"username": admin_user.username, "password": "password"})

    assert response.status_code == 429


def test_without_redis_no_password_is_checked_and_the_answer_is_503(user, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    response = attempt(user.username, PASSWORD)

    assert response.status_code == 503
    assert response.json() == {
        "detail": "Signing in is unavailable for a moment; try again shortly."
    }
    assert response["Retry-After"] == "5"
    assert CountingHasher.verifications == 0


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("5/15m", lockout.Rule(limit=5, window_seconds=900)),
        ("100/1h", lockout.Rule(limit=100, window_seconds=3600)),
        ("100/h", lockout.Rule(limit=100, window_seconds=3600)),
        (" 3 / 2d ", lockout.Rule(limit=3, window_seconds=172800)),
        ("10/30s", lockout.Rule(limit=10, window_seconds=30)),
    ],
)
def test_limits_are_written_as_n_per_period(text, rule):
    assert lockout.Rule.parse(text) == rule


@pytest.mark.parametrize("text", ["", "5", "5/", "0/m", "-1/m", "5/15x", "5/m/h", "five/m"])
def test_a_malformed_limit_is_refused(text):
    with pytest.raises(ValueError, match="N/period"):
        lockout.Rule.parse(text)


@pytest.mark.django_db(transaction=True)
def test_a_password_check_beyond_the_processs_hashing_slots_is_refused_at_once(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.GatedHasher"]
    settings.PASSWORD_CHECK_CONCURRENCY = 1
    user, other = make_user(), make_user()
    GatedHasher.arm()
    try:
        first = in_thread(lambda: attempt(user.username, PASSWORD))
        assert GatedHasher.started.wait(timeout=10)  # it holds the only slot, hashing

        busy = attempt(other.username, PASSWORD)
        registering = Client().post(
            "/api/v1/auth/register",
            {"username": "newcomer", "password": "a long pass phrase 7"},
            content_type="application/json",
        )
    finally:
        GatedHasher.disarm()
    first_answer = first.result()

    assert busy.status_code == 503
    assert busy.json() == {
        "detail": "Too many passwords are being checked at once; try again in a second."
    }
    assert busy["Retry-After"] == "1"
    assert registering.status_code == 503
    assert first_answer.status_code == 200
    # A refused check is no failed attempt: five wrong ones still come before the lockout.
    assert fail(other.username, 5) == [401] * 5
    assert_locked_out(attempt(other.username, PASSWORD))

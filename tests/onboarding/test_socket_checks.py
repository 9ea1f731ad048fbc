"""The reconciler's read: only the users whose sockets the database disagrees with."""

import pytest

from onboarding.models import User
from onboarding.selectors import SocketsHeld, socket_checks_differing
from onboarding.services import profile_update
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def held(*rows: tuple[int, int, int, int]) -> SocketsHeld:
    user_ids, lowest, highest, generations = (list(column) for column in zip(*rows, strict=True))
    return SocketsHeld(
        user_ids=user_ids,
        lowest_versions=lowest,
        highest_versions=highest,
        oldest_generations=generations,
    )


def test_sockets_that_agree_with_the_database_are_left_out():
    user = make_user()
    profile_update(user_id=user.pk, first_name="Ada")
    assert socket_checks_differing(held=held((user.pk, 1, 1, 0))) == {}


@pytest.mark.parametrize(
    ("lowest", "highest", "generation"),
    [(0, 1, 0), (1, 2, 0), (0, 0, 0), (2, 2, 0), (1, 1, -1)],
    ids=["one-socket-behind", "one-socket-ahead", "behind", "ahead", "older-generation"],
)
def test_disagreeing_sockets_get_their_users_check(lowest, highest, generation):
    user = make_user()
    profile_update(user_id=user.pk, first_name="Ada")
    agreeing = make_user()
    checks = socket_checks_differing(
        held=held((user.pk, lowest, highest, generation), (agreeing.pk, 0, 0, 0))
    )
    assert list(checks) == [user.pk]
    assert (checks[user.pk].version, checks[user.pk].is_active) == (1, True)


def test_inactive_and_deleted_users_are_reported():
    inactive = make_user(is_active=False)
    deleted = make_user()
    deleted_id = deleted.pk
    User.objects.filter(pk=deleted_id).delete()
    checks = socket_checks_differing(held=held((inactive.pk, 0, 0, 0), (deleted_id, 0, 0, 0)))
    assert checks[inactive.pk].is_active is False
    assert checks[deleted_id] is None


def test_many_sockets_cost_one_statement(django_assert_num_queries):
    users = [make_user() for _ in range(50)]
    with django_assert_num_queries(1):
        assert socket_checks_differing(held=held(*((u.pk, 0, 0, 0) for u in users))) == {}

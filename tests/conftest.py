import pytest
from django.test import Client

from onboarding.tokens import token_pair_issue
from tests.factories import make_user


@pytest.fixture
def user(db):
    return make_user()


@pytest.fixture
def other_user(db):
    return make_user()


def bearer_client(user) -> Client:
    access = token_pair_issue(user_id=user.pk).access
    return Client(headers={"Authorization": f"Bearer {access}"})


@pytest.fixture
def api(user) -> Client:
    """A client authenticated as `user` with a Bearer access token."""
    return bearer_client(user)


@pytest.fixture
def anonymous() -> Client:
    return Client()

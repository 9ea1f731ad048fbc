"""Test data builders. They create rows directly: tests of the services call the services."""

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor

import jwt
from django.db import connections
from django.utils import timezone

from onboarding import services
from onboarding.models import Channel, ManualPrompt, OnboardingProfile, User
from onboarding.sign_ins import sign_in_start
from onboarding.tokens import TokenPair

PASSWORD = "correct horse battery staple"
PROFILE_FIELDS = ("first_name", "last_name", "phone_number", "business_type", "wizard_completed_at")
_sequence = itertools.count(1)


def make_user(**fields) -> User:
    """A user with an onboarding row, as registration makes one; profile fields go there."""
    profile_fields = {name: fields.pop(name) for name in PROFILE_FIELDS if name in fields}
    number = next(_sequence)
    fields.setdefault("username", f"user{number}")
    user = User(**fields)
    user.set_password(PASSWORD)
    user.save()
    OnboardingProfile.objects.create(user=user, **profile_fields)
    return user


def make_complete_user(**fields) -> User:
    """A user who meets all six requirements (wizard not yet completed)."""
    fields.setdefault("first_name", "Ada")
    fields.setdefault("last_name", "Lovelace")
    fields.setdefault("phone_number", "+14155552671")
    fields.setdefault("business_type", "retail")
    user = make_user(**fields)
    ManualPrompt.objects.create(user=user, content="Be kind.", updated_at=timezone.now())
    Channel.objects.create(
        user=user, platform="instagram", external_id=f"ig-{user.pk}", connected_at=timezone.now()
    )
    return user


def make_completable_via_services(user: User) -> None:
    """Meet all six requirements through the services (each write with its outbox row)."""
    services.profile_update(
        user_id=user.pk,
        first_name="Ada",
        last_name="Lovelace",
        phone_number="+14155552671",
        business_type="retail",
    )
    services.manual_prompt_save(user_id=user.pk, content="Be kind.")
    services.channel_connect(user_id=user.pk, platform="instagram", external_id=f"ig-{user.pk}")


def _sign_in(user_id: int) -> TokenPair:
    return sign_in_start(user=User.objects.get(pk=user_id))


def _in_own_thread(function, *args):
    """Run ORM code from an async test: in a thread of its own, its connection closed after."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(run).result()


def tokens_for(user: User) -> TokenPair:
    """A fresh sign-in of `user`, as `POST /auth/token` would start one (from any test)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _sign_in(user.pk)
    return _in_own_thread(_sign_in, user.pk)


def sign_in_claims(user_id: int) -> dict:
    """`sid` and `gen` of a fresh sign-in of the user (of sign-in 1 and generation 0 when no
    such user exists), for tokens built by hand."""
    try:
        pair = tokens_for(User(pk=user_id))
    except User.DoesNotExist:
        return {"sid": 1, "gen": 0}
    claims = jwt.decode(pair.access, options={"verify_signature": False})
    return {"sid": claims["sid"], "gen": claims["gen"]}


def profile_of(user: User) -> OnboardingProfile:
    """The user's onboarding row as the database has it now."""
    return OnboardingProfile.objects.get(user_id=user.pk)

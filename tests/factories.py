"""Test data builders. They create rows directly: tests of the services call the services."""

import itertools

from django.utils import timezone

from onboarding.models import Channel, ManualPrompt, User

PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


def make_user(**fields) -> User:
    number = next(_sequence)
    fields.setdefault("username", f"user{number}")
    user = User(**fields)
    user.set_password(PASSWORD)
    user.save()
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

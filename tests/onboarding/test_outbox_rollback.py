"""A write and its outbox row commit together or not at all.

The `committing` tests commit for real (`transactional_db`) and read the outcome over a
connection of their own, so they see only what was committed. The nudge test runs inside the
test transaction, where on-commit callbacks wait to be captured.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from django.db import ProgrammingError, connection, transaction

from onboarding import services
from onboarding.models import Channel, ManualPrompt, OnboardingProfile, User
from outbox.models import OutboxEvent
from outbox.nudge import relay_request
from tests.concurrency import in_thread
from tests.factories import make_completable_via_services, make_user

committing = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


def read_committed(read: Callable[[], T]) -> T:
    """Run `read` on a fresh database connection in another thread: committed data only."""
    return in_thread(read).result()


def onboarding_and_outbox_state(user_id: int) -> dict[str, Any]:
    """Everything an onboarding write can change, plus every outbox row."""
    user = User.objects.get(pk=user_id)
    onboarding = OnboardingProfile.objects.get(user_id=user_id)
    return {
        "profile": (
            onboarding.first_name,
            onboarding.last_name,
            onboarding.phone_number,
            onboarding.business_type,
        ),
        "wizard_completed_at": onboarding.wizard_completed_at,
        "is_active": user.is_active,
        "credentials_generation": user.credentials_generation,
        "version": onboarding.version,
        "prompt": list(ManualPrompt.objects.filter(user_id=user_id).values_list("content")),
        "channels": list(
            Channel.objects.order_by("pk").values_list(
                "user_id", "platform", "external_id", "disconnected_at"
            )
        ),
        "outbox": list(
            OutboxEvent.objects.order_by("pk").values_list("user_id", "topic", "version")
        ),
    }


@dataclass(frozen=True)
class Write:
    name: str
    perform: Callable[[User, Any], object]
    prepare: Callable[[User], Any] = lambda user: None

    def __str__(self) -> str:
        return self.name


WRITES = [
    Write(
        "profile_update",
        perform=lambda user, _: services.profile_update(
            user_id=user.pk, first_name="Grace", phone_number="+14155552671"
        ),
    ),
    Write(
        "manual_prompt_save_create",
        perform=lambda user, _: services.manual_prompt_save(user_id=user.pk, content="Hi."),
    ),
    Write(
        "manual_prompt_save_change",
        prepare=lambda user: services.manual_prompt_save(user_id=user.pk, content="Old."),
        perform=lambda user, _: services.manual_prompt_save(user_id=user.pk, content="New."),
    ),
    Write(
        "manual_prompt_delete",
        prepare=lambda user: services.manual_prompt_save(user_id=user.pk, content="Old."),
        perform=lambda user, _: services.manual_prompt_delete(user_id=user.pk),
    ),
    Write(
        "channel_connect",
        perform=lambda user, _: services.channel_connect(
            user_id=user.pk, platform="instagram", external_id="ig-rollback"
        ),
    ),
    Write(
        "channel_disconnect",
        prepare=lambda user: (
            services.channel_connect(
                user_id=user.pk, platform="telegram", external_id="tg-rollback"
            ).channel.pk
        ),
        perform=lambda user, channel_id: services.channel_disconnect(
            user_id=user.pk, channel_id=channel_id
        ),
    ),
    Write(
        "wizard_complete",
        prepare=make_completable_via_services,
        perform=lambda user, _: services.wizard_complete(user_id=user.pk),
    ),
    Write(
        "user_set_active",
        perform=lambda user, _: services.user_set_active(user_id=user.pk, is_active=False),
    ),
]


class Abort(Exception):
    pass


@committing
@pytest.mark.parametrize("write", WRITES, ids=str)
def test_outer_rollback_undoes_the_write_and_its_row(write):
    user = make_user()
    context = write.prepare(user)
    before = read_committed(lambda: onboarding_and_outbox_state(user.pk))

    with pytest.raises(Abort), transaction.atomic():
        write.perform(user, context)
        # Inside the transaction the write and its row are there...
        inside = onboarding_and_outbox_state(user.pk)
        assert inside["version"] == before["version"] + 1
        assert len(inside["outbox"]) == len(before["outbox"]) + 1
        raise Abort

    # ...and after the rollback neither is, for this connection or any other.
    assert onboarding_and_outbox_state(user.pk) == before
    assert read_committed(lambda: onboarding_and_outbox_state(user.pk)) == before


@pytest.mark.django_db
@pytest.mark.parametrize("write", WRITES, ids=str)
def test_only_a_committed_write_nudges_the_relay(write, django_capture_on_commit_callbacks):
    user = make_user()
    context = write.prepare(user)

    with (
        django_capture_on_commit_callbacks() as rolled_back,
        pytest.raises(Abort),
        transaction.atomic(),
    ):
        write.perform(user, context)
        raise Abort
    with django_capture_on_commit_callbacks() as committed:
        write.perform(user, context)

    assert rolled_back == []
    assert committed == [relay_request]


TRIGGER_MESSAGE = "outbox insert refused by test trigger"


@contextmanager
def outbox_inserts_fail() -> Iterator[None]:
    """A real database fault: every INSERT into the outbox table raises."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_refuse_outbox_insert() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                f"RAISE EXCEPTION '{TRIGGER_MESSAGE}'; "
                "END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_outbox_insert BEFORE INSERT ON outbox_outboxevent "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_outbox_insert()"
            )
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_outbox_insert ON outbox_outboxevent")
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_outbox_insert()")


@committing
@pytest.mark.parametrize("write", WRITES, ids=str)
def test_failed_outbox_insert_rolls_back_the_write(write):
    user = make_user()
    context = write.prepare(user)
    before = read_committed(lambda: onboarding_and_outbox_state(user.pk))

    with outbox_inserts_fail(), pytest.raises(ProgrammingError, match=TRIGGER_MESSAGE):
        write.perform(user, context)

    assert read_committed(lambda: onboarding_and_outbox_state(user.pk)) == before


@committing
def test_fault_trigger_is_gone_afterwards():
    """The trigger is dropped, so later writes (and other tests) work again."""
    user = make_user()
    with outbox_inserts_fail(), pytest.raises(ProgrammingError):
        services.profile_update(user_id=user.pk, first_name="Ada")

    services.profile_update(user_id=user.pk, first_name="Ada")

    state = read_committed(lambda: onboarding_and_outbox_state(user.pk))
    assert state["profile"] == ("Ada", "", "", "")
    assert state["outbox"] == [(user.pk, "onboarding.profile_updated", 1)]

"""Every write to onboarding data.

Each service locks the user's onboarding row first (one lock order everywhere: that row,
then the user's account row where needed, so writers of one user queue instead of
deadlocking), validates, saves with `update_fields`, bumps the onboarding version and
inserts the outbox row naming who made the change, all in one `transaction.atomic()`.
A write that changes nothing returns early: no version, no row. Nothing else writes this
data: the account row Django's auth writes holds none of it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding import lockout, validators
from onboarding.exceptions import (
    ChannelLimitReached,
    ChannelTaken,
    InvalidInput,
    NotFound,
    PasswordRejected,
    UsernameTaken,
    WizardIncomplete,
)
from onboarding.models import (
    Channel,
    ManualPrompt,
    OnboardingProfile,
    SignInEnd,
    User,
    WizardStatusHistory,
)
from onboarding.selectors import (
    LatestHistory,
    status_history_latest,
    wizard_status_get,
    wizard_statuses_with_history_get,
)
from onboarding.sign_ins import credentials_void
from onboarding.sql import advisory_transaction_locks
from onboarding.status import INITIAL_STATUS, PROFILE_REQUIREMENTS, WizardStatus, changed_keys
from outbox.models import Actor, OutboxEvent, Topic
from outbox.services import outbox_enqueue


def _lock_profile(user_id: int) -> OnboardingProfile:
    """The user's onboarding row, locked; created on the first write if missing."""
    profile = OnboardingProfile.objects.select_for_update().filter(user_id=user_id).first()
    if profile is not None:
        return profile
    # Foreign keys are checked at commit on PostgreSQL: ask first.
    if not User.objects.filter(pk=user_id).exists():
        raise NotFound(f"User {user_id} does not exist.")
    # A concurrent first write may insert it too: the second insert waits for the first and
    # does nothing, then waits for its lock.
    OnboardingProfile.objects.bulk_create(
        [OnboardingProfile(user_id=user_id)], ignore_conflicts=True
    )
    return OnboardingProfile.objects.select_for_update().get(user_id=user_id)


def _record_change(
    profile: OnboardingProfile,
    *,
    topic: Topic,
    update_fields: list[str],
    payload: dict[str, Any],
    actor: Actor | None,
) -> None:
    """Save the locked profile's changed fields with the next version, and its outbox row."""
    profile.version += 1
    profile.save(update_fields=[*update_fields, "version"])
    outbox_enqueue(
        user_id=profile.user_id,
        topic=topic,
        version=profile.version,
        payload=payload,
        actor=actor or Actor.user(profile.user_id),
    )


def user_register(*, username: str, password: str, email: str = "") -> User:
    # NFKC, as Django's create_user does, so a fullwidth "alice" is not a second "alice";
    # login looks names up the same way (AccountManager.get_by_natural_key).
    username = User.normalize_username(username).strip()
    email = email.strip()
    if not username:
        raise InvalidInput("username", "This field may not be blank.")
    if len(username) > 150:
        raise InvalidInput("username", "Ensure this value has at most 150 characters.")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as error:
        raise InvalidInput("username", " ".join(error.messages)) from None
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput("email", "Enter a valid email address.") from None
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as error:
        raise PasswordRejected(error.messages) from None

    with lockout.password_hashing():
        candidate.set_password(password)
    try:
        # The database decides, in any case (a unique index on the upper-cased name):
        # concurrent registrations of "Ann" and "ANN" cannot both pass a check made first.
        with transaction.atomic():
            candidate.save()
            OnboardingProfile.objects.create(user=candidate)
    except IntegrityError:
        raise UsernameTaken(username) from None
    return candidate


def profile_update(
    *, user_id: int, actor: Actor | None = None, **fields: str | None
) -> OnboardingProfile:
    """Change any of the profile fields (`PROFILE_REQUIREMENTS`); `None` or "" clears one.

    `actor` is who makes the change: the user themself unless said otherwise (the admin).
    """
    unknown = set(fields) - set(PROFILE_REQUIREMENTS)
    if unknown:
        raise TypeError(f"profile_update() got unknown profile fields: {sorted(unknown)}")
    cleaned = {name: PROFILE_REQUIREMENTS[name].clean(value) for name, value in fields.items()}

    with transaction.atomic():
        profile = _lock_profile(user_id)
        changed = [name for name, value in cleaned.items() if getattr(profile, name) != value]
        if not changed:
            return profile
        for name in changed:
            setattr(profile, name, cleaned[name])
        _record_change(
            profile,
            topic=Topic.PROFILE_UPDATED,
            update_fields=changed,
            payload={"fields": changed},
            actor=actor,
        )
    return profile


def manual_prompt_save(*, user_id: int, content: str, actor: Actor | None = None) -> ManualPrompt:
    content = validators.clean_manual_prompt(content)
    with transaction.atomic():
        profile = _lock_profile(user_id)
        prompt = ManualPrompt.objects.filter(user_id=user_id).first()
        if prompt is not None and prompt.content == content:
            return prompt
        now = timezone.now()
        if prompt is None:
            prompt = ManualPrompt.objects.create(user_id=user_id, content=content, updated_at=now)
        else:
            prompt.content = content
            prompt.updated_at = now
            prompt.save(update_fields=["content", "updated_at"])
        _record_change(
            profile,
            topic=Topic.MANUAL_PROMPT_SAVED,
            update_fields=[],
            payload={"blank": content == ""},
            actor=actor,
        )
    return prompt


def manual_prompt_delete(*, user_id: int, actor: Actor | None = None) -> None:
    with transaction.atomic():
        profile = _lock_profile(user_id)
        deleted, _ = ManualPrompt.objects.filter(user_id=user_id).delete()
        if deleted:
            _record_change(
                profile,
                topic=Topic.MANUAL_PROMPT_DELETED,
                update_fields=[],
                payload={},
                actor=actor,
            )


@dataclass(frozen=True, slots=True)
class ChannelConnection:
    channel: Channel
    created: bool


def channel_connect(
    *,
    user_id: int,
    platform: str,
    external_id: str,
    name: str | None = None,
    actor: Actor | None = None,
) -> ChannelConnection:
    platform = validators.clean_platform(platform)
    external_id = validators.clean_external_id(external_id)
    name = validators.clean_channel_name(name)
    with transaction.atomic():
        profile = _lock_profile(user_id)
        active = Channel.objects.filter(
            platform=platform, external_id=external_id, disconnected_at__isnull=True
        ).first()
        if active is not None:
            if active.user_id != user_id:
                raise ChannelTaken(f"{platform} account {external_id} belongs to another user.")
            return ChannelConnection(channel=active, created=False)
        limit = settings.CHANNELS_PER_USER_LIMIT
        # Counted under the profile's row lock: concurrent connects of one user take turns.
        if Channel.objects.filter(user_id=user_id, disconnected_at__isnull=True).count() >= limit:
            raise ChannelLimitReached(f"User {user_id} has {limit} active channels.")
        try:
            # A savepoint: the owner check above can race with another user's connect.
            with transaction.atomic():
                channel = Channel.objects.create(
                    user_id=user_id,
                    platform=platform,
                    external_id=external_id,
                    name=name,
                    connected_at=timezone.now(),
                )
        except IntegrityError:
            raise ChannelTaken(
                f"{platform} account {external_id} belongs to another user."
            ) from None
        _record_change(
            profile,
            topic=Topic.CHANNEL_CONNECTED,
            update_fields=[],
            payload={"channel_id": channel.pk, "platform": platform},
            actor=actor,
        )
    return ChannelConnection(channel=channel, created=True)


def channel_disconnect(*, user_id: int, channel_id: int, actor: Actor | None = None) -> None:
    with transaction.atomic():
        profile = _lock_profile(user_id)
        channel = Channel.objects.filter(
            pk=channel_id, user_id=user_id, disconnected_at__isnull=True
        ).first()
        if channel is None:
            raise NotFound(f"Channel {channel_id} not found.")
        channel.disconnected_at = timezone.now()
        channel.save(update_fields=["disconnected_at"])
        _record_change(
            profile,
            topic=Topic.CHANNEL_DISCONNECTED,
            update_fields=[],
            payload={"channel_id": channel.pk, "platform": channel.platform},
            actor=actor,
        )


@dataclass(frozen=True, slots=True)
class WizardCompletion:
    completed_at: datetime
    status: WizardStatus


def wizard_complete(*, user_id: int, actor: Actor | None = None) -> WizardCompletion:
    """Mark the wizard complete once every requirement is met; idempotent afterwards."""
    with transaction.atomic():
        profile = _lock_profile(user_id)
        if profile.wizard_completed_at is None:
            # Read under the row lock: no write of this user can slip in between.
            status = wizard_status_get(user_id=user_id)
            if not status.can_complete:
                raise WizardIncomplete(status.missing_fields)
            profile.wizard_completed_at = timezone.now()
            _record_change(
                profile,
                topic=Topic.WIZARD_COMPLETED,
                update_fields=["wizard_completed_at"],
                payload={},
                actor=actor,
            )
        status = wizard_status_get(user_id=user_id)
    return WizardCompletion(completed_at=profile.wizard_completed_at, status=status)


def user_set_active(*, user_id: int, is_active: bool, actor: Actor | None = None) -> User:
    """(De)activate an account; the relay closes a deactivated user's sockets (4403).

    Deactivation also voids every credential issued before it, so reactivating the account
    brings none of them back.
    """
    with transaction.atomic():
        profile = _lock_profile(user_id)
        user = User.objects.select_for_update().get(pk=user_id)
        if user.is_active == is_active:
            return user
        user.is_active = is_active
        update_fields = ["is_active"]
        if not is_active:
            credentials_void(user, reason=SignInEnd.DEACTIVATED)
            update_fields.append("credentials_generation")
        user.save(update_fields=update_fields)
        _record_change(
            profile,
            topic=Topic.ACCOUNT_ACTIVATION_CHANGED,
            update_fields=[],
            payload={"is_active": is_active},
            actor=actor,
        )
    return user


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A freshly computed status and the outbox events behind it."""

    status: WizardStatus
    causes: list[str]
    actors: list[dict[str, Any]]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class StatusPush:
    """What one user's sockets get for a batch of their outbox events, in this order."""

    user_id: int
    deactivated: bool = False  # close every socket (4403); nothing else is sent
    revoked_generation: int | None = None  # close the sockets of credentials issued before
    status: WizardStatus | None = None  # the new status


def wizard_status_pushes_record(
    *, events_by_user: Mapping[int, Sequence[OutboxEvent]]
) -> list[StatusPush]:
    """The relay's one question to the wizard, in the relay's claim transaction.

    For these users' committed outbox events: read each user's status once, record it in
    the history if it changed, and say what their sockets get. Each user's turn is taken
    first (`_take_turns_with_other_relays`), so the status read is at least as new as what
    another relay recorded.
    """
    _take_turns_with_other_relays(user_ids=list(events_by_user))
    statuses, latest = wizard_statuses_with_history_get(user_ids=list(events_by_user))
    changes = [
        _status_change(status, events_by_user[user_id]) for user_id, status in statuses.items()
    ]
    to_push = {
        status.user_id: status
        for status in wizard_status_history_record(changes=changes, latest=latest)
    }
    pushes = []
    for user_id, status in statuses.items():
        if not status.is_active:
            pushes.append(StatusPush(user_id=user_id, deactivated=True))
            continue
        revoked = any(event.topic == Topic.CREDENTIALS_REVOKED for event in events_by_user[user_id])
        push = StatusPush(
            user_id=user_id,
            revoked_generation=status.credentials_generation if revoked else None,
            status=to_push.get(user_id),
        )
        if push.revoked_generation is not None or push.status is not None:
            pushes.append(push)
    return pushes


def _status_change(status: WizardStatus, events: Sequence[OutboxEvent]) -> StatusChange:
    """What the history says of a status: the changes behind it and who made them.

    A revocation of credentials changes no onboarding data: it is behind no status.
    """
    data_events = [event for event in events if event.topic != Topic.CREDENTIALS_REVOKED]
    actors = list(dict.fromkeys(event.actor for event in data_events))
    return StatusChange(
        status=status,
        causes=sorted({event.topic for event in data_events}),
        actors=[actor.as_dict() for actor in actors],
        occurred_at=min(event.created_at for event in data_events or events),
    )


def _take_turns_with_other_relays(*, user_ids: Sequence[int]) -> None:
    """Relays of the same user read its status and record it one after the other.

    Otherwise a relay holding an older status could record it after a relay with a newer one
    compared against the history as it stood, found no change and recorded and pushed nothing:
    the history would end on the older status and sockets show it until the reconciler runs.
    Transaction-scoped advisory locks keyed by user id, taken in id order (no deadlock); the
    status is read after them, so it is at least as new as what the previous relay recorded.
    """
    advisory_transaction_locks(user_ids)


def wizard_status_history_record(
    *, changes: Sequence[StatusChange], latest: Mapping[int, LatestHistory] | None = None
) -> list[WizardStatus]:
    """Record each status that differs from the user's previous entry; return those to push.

    Deterministic per version, so a relay that crashed after recording and before pushing
    decides the same on its retry: an entry already recorded at this version is pushed
    again, a version older than the newest entry is not pushed at all. `latest` is each
    user's newest entry when the caller read it with the statuses.
    """
    if latest is None:
        latest = status_history_latest(user_ids=[change.status.user_id for change in changes])
    recorded_at = timezone.now()
    to_record: list[WizardStatusHistory] = []
    to_push: list[WizardStatus] = []
    for change in changes:
        status = change.status
        newest = latest.get(status.user_id)
        if newest is not None and newest.version > status.version:
            continue
        if newest is not None and newest.version == status.version:
            to_push.append(status)
            continue
        message = status.as_message()
        changed = changed_keys(newest.status if newest is not None else INITIAL_STATUS, message)
        if not changed:
            continue
        to_record.append(
            WizardStatusHistory(
                user_id=status.user_id,
                version=status.version,
                status=message,
                changed=changed,
                causes=change.causes,
                actors=change.actors,
                occurred_at=change.occurred_at,
                recorded_at=recorded_at,
            )
        )
        to_push.append(status)
    # Two relays may record the same version at once: the first one wins, both push it.
    WizardStatusHistory.objects.bulk_create(to_record, ignore_conflicts=True)
    return to_push

from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Topic(models.TextChoices):
    # Stored values: never rename one, add new ones instead.
    PROFILE_UPDATED = "onboarding.profile_updated", "Profile updated"
    MANUAL_PROMPT_SAVED = "onboarding.manual_prompt_saved", "Manual prompt saved"
    MANUAL_PROMPT_DELETED = "onboarding.manual_prompt_deleted", "Manual prompt deleted"
    CHANNEL_CONNECTED = "onboarding.channel_connected", "Channel connected"
    CHANNEL_DISCONNECTED = "onboarding.channel_disconnected", "Channel disconnected"
    WIZARD_COMPLETED = "onboarding.wizard_completed", "Wizard completed"
    ACCOUNT_ACTIVATION_CHANGED = "onboarding.account_activation_changed", "Account (de)activated"
    # Not a change of onboarding data: every credential issued before is void, and the
    # user's open sockets are closed.
    CREDENTIALS_REVOKED = "onboarding.credentials_revoked", "Credentials revoked"


class ActorKind(models.TextChoices):
    # Stored values: never rename one.
    USER = "user", "The user"
    ADMIN = "admin", "An administrator"
    SYSTEM = "system", "The system"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: the user, an administrator (their user id), or the system."""

    kind: Literal["user", "admin", "system"]
    id: int | None

    @classmethod
    def user(cls, user_id: int) -> "Actor":
        return cls(ActorKind.USER.value, user_id)

    @classmethod
    def admin(cls, admin_id: int) -> "Actor":
        return cls(ActorKind.ADMIN.value, admin_id)

    @classmethod
    def system(cls) -> "Actor":
        return cls(ActorKind.SYSTEM.value, None)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id}


PENDING = Q(relayed_at__isnull=True, failed_at__isnull=True)


class OutboxEventQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(PENDING)

    def failed(self):
        return self.filter(failed_at__isnull=False)

    def relayed(self):
        return self.filter(relayed_at__isnull=False)


class OutboxEvent(models.Model):
    """One committed change to a user's onboarding data, waiting to be relayed.

    Written in the same transaction as the change itself. `version` is the user's
    onboarding version after the change; the actor is who made it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="outbox_events"
    )
    topic = models.CharField(max_length=64, choices=Topic.choices)
    payload = models.JSONField(default=dict, blank=True)
    version = models.BigIntegerField()
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The admin's user id")
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    relayed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    objects = OutboxEventQuerySet.as_manager()

    class Meta:
        indexes = [
            # The relay's scan: pending rows by due time. Stays small as rows settle.
            models.Index(
                fields=["next_attempt_at", "id"], condition=PENDING, name="outbox_pending"
            ),
            models.Index(
                fields=["relayed_at"], condition=Q(relayed_at__isnull=False), name="outbox_relayed"
            ),
            models.Index(
                fields=["failed_at"], condition=Q(failed_at__isnull=False), name="outbox_failed"
            ),
            models.Index(fields=["user", "version"], name="outbox_user_version"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} for user {self.user_id} (v{self.version})"

    @property
    def actor(self) -> Actor:
        return Actor(self.actor_kind, self.actor_id)

    @property
    def state(self) -> str:
        if self.relayed_at:
            return "relayed"
        if self.failed_at:
            return "failed"
        return "pending"

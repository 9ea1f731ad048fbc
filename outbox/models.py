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
    onboarding version after the change.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="outbox_events"
    )
    topic = models.CharField(max_length=64, choices=Topic.choices)
    payload = models.JSONField(default=dict, blank=True)
    version = models.BigIntegerField()
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
    def state(self) -> str:
        if self.relayed_at:
            return "relayed"
        if self.failed_at:
            return "failed"
        return "pending"

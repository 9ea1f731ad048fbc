from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

MANUAL_PROMPT_MAX_LENGTH = 10_000


class BusinessType(models.TextChoices):
    # Stored values are part of the API: never rename one.
    ECOMMERCE = "ecommerce", "E-commerce"
    RETAIL = "retail", "Retail store"
    RESTAURANT = "restaurant", "Restaurant or cafe"
    BEAUTY = "beauty", "Beauty and wellness"
    HEALTHCARE = "healthcare", "Healthcare"
    EDUCATION = "education", "Education"
    REAL_ESTATE = "real_estate", "Real estate"
    TRAVEL = "travel", "Travel and hospitality"
    FITNESS = "fitness", "Fitness and sports"
    PROFESSIONAL_SERVICES = "professional_services", "Professional services"
    OTHER = "other", "Other"


class Platform(models.TextChoices):
    INSTAGRAM = "instagram", "Instagram"
    TELEGRAM = "telegram", "Telegram"


class User(AbstractUser):
    phone_number = models.CharField(max_length=20, blank=True, help_text="E.164")
    business_type = models.CharField(max_length=32, choices=BusinessType.choices, blank=True)
    wizard_completed_at = models.DateTimeField(null=True, blank=True)
    # Bumped under the user's row lock by every onboarding write; see onboarding.services.
    onboarding_version = models.BigIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class ManualPrompt(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="manual_prompt")
    content = models.TextField(max_length=MANUAL_PROMPT_MAX_LENGTH, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Manual prompt of user {self.user_id}"


class Channel(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="channels")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    connected_at = models.DateTimeField()
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # An external account belongs to one user at a time.
            models.UniqueConstraint(
                fields=["platform", "external_id"],
                condition=Q(disconnected_at__isnull=True),
                name="channel_one_active_owner",
            ),
        ]
        indexes = [
            models.Index(
                fields=["user", "platform"],
                condition=Q(disconnected_at__isnull=True),
                name="channel_active_by_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} {self.external_id}"

    @property
    def is_active(self) -> bool:
        return self.disconnected_at is None


class WizardStatusHistory(models.Model):
    """Audit of every distinct status a user's wizard went through, one row per version.

    Written by the outbox relay just before it pushes the status; never updated.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="status_history")
    version = models.BigIntegerField()
    status = models.JSONField()
    changed = models.JSONField(default=list)
    causes = models.JSONField(default=list)
    occurred_at = models.DateTimeField(help_text="When the first change behind it committed")
    recorded_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "wizard status history"
        constraints = [
            models.UniqueConstraint(fields=["user", "version"], name="history_one_per_version"),
        ]
        ordering = ["user", "-version"]

    def __str__(self) -> str:
        return f"User {self.user_id} v{self.version}"

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.crypto import salted_hmac

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


class AccountManager(UserManager):
    def get_by_natural_key(self, username: str):
        """Case-insensitive, after the normalisation registration applies (NFKC, trimmed).

        Every sign-in path looks users up here: the API's token and login, the admin's login.
        """
        return self.get(username__iexact=self.model.normalize_username(username).strip())


# Written only by the services, with explicit `update_fields` (see User.save).
SERVICE_OWNED_USER_FIELDS = ("is_active", "credentials_generation")


class User(AbstractUser):
    """An account: what Django's auth owns. The onboarding data lives in `OnboardingProfile`.

    Django writes this row from many places (the admin's password form, `changepassword`,
    `update_last_login`), often with a full `save()` of an instance read a while before. So
    nothing the status depends on lives here but `is_active`, and the columns the services
    own are never written by a full save: see `save`.
    """

    # Names are onboarding data: they live in OnboardingProfile with the rest of it.
    first_name = None
    last_name = None
    # Raised by every revocation of all of a user's credentials (password change, "end all
    # sessions", deactivation). Access and refresh tokens, tickets and sessions carry the
    # generation they were issued under and stop working once it moves on.
    credentials_generation = models.BigIntegerField(default=0, editable=False)

    objects = AccountManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # The same expression `username__iexact` compares, so lookups use this index.
            models.UniqueConstraint(Upper("username"), name="user_username_unique_any_case"),
        ]

    def __str__(self) -> str:
        return self.username

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None and not self._state.adding and self.pk is not None:
            self._save_all_but_service_owned(*args, **kwargs)
            return
        super().save(*args, **kwargs)
        self._remember_loaded(None if update_fields is None else update_fields)

    def _save_all_but_service_owned(self, *args, **kwargs) -> None:
        """A full save of an existing user writes every column but the services' own.

        Django's password form and `changepassword` save a user instance they read before
        hashing the new password; writing `is_active` or `credentials_generation` from it
        would undo a deactivation or an "end all sessions" that committed meanwhile. Changing
        one of them in memory and saving it this way is a mistake: the services do it. A
        password changed this way still ends every sign-in, as the services' change does.
        """
        loaded = getattr(self, "_loaded", {})
        for name in SERVICE_OWNED_USER_FIELDS:
            if name in loaded and getattr(self, name) != loaded[name]:
                raise ValueError(f"User.{name} is changed by onboarding.services, not by save().")
        password_changed = "password" in loaded and self.password != loaded["password"]
        kwargs["update_fields"] = [
            field.name
            for field in self._meta.concrete_fields
            if not field.primary_key and field.name not in SERVICE_OWNED_USER_FIELDS
        ]
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            if password_changed:
                User.objects.filter(pk=self.pk).update(
                    credentials_generation=F("credentials_generation") + 1
                )
        self.refresh_from_db(fields=["password", *SERVICE_OWNED_USER_FIELDS])

    @classmethod
    def from_db(cls, db, field_names, values):
        user = super().from_db(db, field_names, values)
        user._remember_loaded()
        return user

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        self._remember_loaded(fields)

    def _remember_loaded(self, fields=None) -> None:
        """Note the values as the database has them now: what a full save compares against."""
        loaded = self.__dict__.setdefault("_loaded", {})
        for name in ("password", *SERVICE_OWNED_USER_FIELDS):
            if (fields is None or name in fields) and name in self.__dict__:
                loaded[name] = self.__dict__[name]

    def _get_session_auth_hash(self, secret=None) -> str:
        # Django ends other sessions when the password hash changes; "end all sessions" and
        # deactivation end them by moving the generation, so the hash covers both.
        return salted_hmac(
            "onboarding.User.session_auth_hash",
            f"{self.password}\x00{self.credentials_generation}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


class OnboardingProfile(models.Model):
    """The wizard's data of one user, written only by `onboarding.services`.

    Its row is the lock every onboarding write of the user takes, and `version` counts the
    committed changes (contract section 1). A user has none until registration or the first
    write; reads treat a missing row as empty data at version 0.
    """

    user = models.OneToOneField(
        User, on_delete=models.CASCADE, primary_key=True, related_name="onboarding"
    )
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    phone_number = models.CharField(max_length=20, blank=True, help_text="E.164")
    business_type = models.CharField(max_length=32, choices=BusinessType.choices, blank=True)
    wizard_completed_at = models.DateTimeField(null=True, blank=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"Onboarding of user {self.user_id}"


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


class SignInEnd(models.TextChoices):
    # Stored values: never rename one.
    LOGOUT = "logout", "Logged out"
    REFRESH_REUSED = "refresh_reused", "A spent refresh token was presented again"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    SESSIONS_ENDED = "sessions_ended", "All sessions ended"
    DEACTIVATED = "deactivated", "Account deactivated"
    REVOKED = "revoked", "Revoked by an administrator"


class SignInQuerySet(models.QuerySet):
    def end(self, reason: SignInEnd) -> int:
        """End those still live: their tokens stop working at once. Returns how many."""
        return self.filter(ended_at=None).update(ended_at=timezone.now(), end_reason=reason)


class SignIn(models.Model):
    """One `auth/token` call and every refresh token descended from it.

    Only the newest refresh token (`refresh_jti`) may be presented; a spent one coming back
    means two holders, so the whole sign-in ends (RFC 9700 §4.14.2). Access tokens name
    their sign-in, so ending it ends them too.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_ins")
    refresh_jti = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="The absolute end, however often refreshed")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=SignInEnd.choices, blank=True)

    objects = SignInQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["user"], condition=Q(ended_at__isnull=True), name="sign_in_live"),
        ]

    def __str__(self) -> str:
        return f"Sign-in {self.pk} of user {self.user_id}"


class WizardStatusHistory(models.Model):
    """Audit of every distinct status a user's wizard went through, one row per version.

    Written by the outbox relay just before it pushes the status; never updated.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="status_history")
    version = models.BigIntegerField()
    status = models.JSONField()
    changed = models.JSONField(default=list)
    causes = models.JSONField(default=list)
    actors = models.JSONField(default=list, help_text="Who made the changes behind it")
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

"""Admin for users and onboarding data. Every onboarding edit goes through the services,
so an admin change writes its outbox row, naming the admin, like any other write."""

from contextlib import contextmanager
from contextvars import ContextVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm

from onboarding import services, sign_ins, validators
from onboarding.exceptions import ChannelTaken, InvalidInput
from onboarding.models import (
    SERVICE_OWNED_USER_FIELDS,
    Channel,
    ManualPrompt,
    OnboardingProfile,
    SignIn,
    User,
    WizardStatusHistory,
)
from onboarding.status import PROFILE_REQUIREMENTS
from outbox.models import Actor

PROFILE_FIELDS = tuple(PROFILE_REQUIREMENTS)

# The admin making the current request: Django's password view builds its form itself.
_acting_admin: ContextVar[Actor | None] = ContextVar("acting_admin", default=None)


def _as_form_error(error: InvalidInput) -> forms.ValidationError:
    return forms.ValidationError(error.message)


def _admin(request) -> Actor:
    return Actor.admin(request.user.pk)


class OnboardingProfileForm(forms.ModelForm):
    class Meta:
        model = OnboardingProfile
        fields = PROFILE_FIELDS

    def clean(self) -> dict:
        """Each profile field through the service's own validator (`PROFILE_REQUIREMENTS`)."""
        cleaned = super().clean()
        for name, requirement in PROFILE_REQUIREMENTS.items():
            if name in cleaned:
                try:
                    cleaned[name] = requirement.clean(cleaned[name])
                except InvalidInput as error:
                    self.add_error(name, _as_form_error(error))
        return cleaned


class OnboardingProfileInline(admin.StackedInline):
    model = OnboardingProfile
    form = OnboardingProfileForm
    fields = (*PROFILE_FIELDS, "wizard_completed_at", "version")
    readonly_fields = ("wizard_completed_at", "version")
    can_delete = False
    max_num = 1
    verbose_name_plural = "onboarding"


class ServicePasswordChangeForm(AdminPasswordChangeForm):
    """Sets the password through the service: hashed first, then written under the user's
    row lock with `update_fields`, voiding every credential the user held."""

    def save(self, commit: bool = True) -> User:
        password = (
            self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        )
        self.user = sign_ins.user_password_set(
            user_id=self.user.pk, password=password, actor=_acting_admin.get() or Actor.system()
        )
        return self.user


@contextmanager
def _acting_as(actor: Actor):
    token = _acting_admin.set(actor)
    try:
        yield
    finally:
        _acting_admin.reset(token)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    change_password_form = ServicePasswordChangeForm
    list_display = (
        "username",
        "email",
        "onboarding__first_name",
        "onboarding__last_name",
        "onboarding__business_type",
        "onboarding__wizard_completed_at",
        "is_active",
        "is_staff",
    )
    list_select_related = ("onboarding",)
    list_filter = ("is_active", "is_staff", "onboarding__business_type")
    search_fields = ("username", "email", "onboarding__first_name", "onboarding__last_name")
    readonly_fields = ("credentials_generation", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Contact", {"fields": ("email",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Sign-ins", {"fields": ("credentials_generation", "last_login", "date_joined")}),
    )
    actions = ("end_all_sessions",)

    def get_inlines(self, request, obj):
        return [OnboardingProfileInline] if obj is not None else []

    def user_change_password(self, request, id, form_url=""):
        with _acting_as(_admin(request)):
            return super().user_change_password(request, id, form_url)

    def save_model(self, request, obj: User, form, change: bool) -> None:
        # An existing user's changes are written in save_related, after its onboarding row
        # is locked: the services' lock order (onboarding row, then account row).
        if not change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        if not change:
            super().save_related(request, form, formsets, change)
            return
        user: User = form.instance
        actor = _admin(request)
        for formset in formsets:
            if formset.model is OnboardingProfile:
                self._save_onboarding(formset, user_id=user.pk, actor=actor)
        if "is_active" in form.changed_data:
            services.user_set_active(
                user_id=user.pk, is_active=form.cleaned_data["is_active"], actor=actor
            )
        concrete = {field.name for field in User._meta.concrete_fields}
        plain_fields = [
            name
            for name in form.changed_data
            if name in concrete and name not in SERVICE_OWNED_USER_FIELDS
        ]
        if plain_fields:
            user.save(update_fields=plain_fields)
        form.save_m2m()
        user.refresh_from_db()

    @staticmethod
    def _save_onboarding(formset, *, user_id: int, actor: Actor) -> None:
        # The formset is not saved as Django would: each changed field goes to the service,
        # so a field the admin did not touch is never written from the page's stale copy.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            changes = {
                name: inline_form.cleaned_data[name]
                for name in PROFILE_FIELDS
                if name in inline_form.changed_data
            }
            if changes:
                profile = services.profile_update(user_id=user_id, actor=actor, **changes)
                formset.changed_objects.append((profile, list(changes)))

    @admin.action(description="End all sessions (sign out everywhere, close sockets)")
    def end_all_sessions(self, request, queryset) -> None:
        actor = _admin(request)
        user_ids = list(queryset.values_list("pk", flat=True))
        for user_id in user_ids:
            sign_ins.user_sessions_end(user_id=user_id, actor=actor)
        self.message_user(request, f"Ended all sessions of {len(user_ids)} user(s).")


@admin.register(SignIn)
class SignInAdmin(admin.ModelAdmin):
    """Sign-ins (token chains) of every user; ending one voids its tokens at once."""

    list_display = (
        "id",
        "user",
        "created_at",
        "refreshed_at",
        "refresh_count",
        "expires_at",
        "ended_at",
        "end_reason",
    )
    list_filter = (("ended_at", admin.EmptyFieldListFilter), "end_reason")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("-id",)
    exclude = ("refresh_jti",)
    actions = ("end_selected",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_end_permission(self, request) -> bool:
        return request.user.has_perm("onboarding.change_signin")

    @admin.action(description="End selected sign-ins", permissions=["end"])
    def end_selected(self, request, queryset) -> None:
        ended = sign_ins.sign_in_end(sign_in_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Ended {ended} sign-in(s).")


class ManualPromptAdminForm(forms.ModelForm):
    # Validated here so bad content is a form error, not an "added successfully" with nothing saved.
    def clean_content(self) -> str:
        try:
            return validators.clean_manual_prompt(self.cleaned_data["content"])
        except InvalidInput as error:
            raise _as_form_error(error) from None


@admin.register(ManualPrompt)
class ManualPromptAdmin(admin.ModelAdmin):
    form = ManualPromptAdminForm
    list_display = ("user", "updated_at")
    search_fields = ("user__username",)
    readonly_fields = ("updated_at",)
    raw_id_fields = ("user",)

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "user") if obj else self.readonly_fields

    def save_model(self, request, obj: ManualPrompt, form, change: bool) -> None:
        try:
            saved = services.manual_prompt_save(
                user_id=obj.user_id, content=obj.content, actor=_admin(request)
            )
        except InvalidInput as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        obj.pk = saved.pk

    def delete_model(self, request, obj: ManualPrompt) -> None:
        services.manual_prompt_delete(user_id=obj.user_id, actor=_admin(request))

    def delete_queryset(self, request, queryset) -> None:
        for user_id in queryset.values_list("user_id", flat=True):
            services.manual_prompt_delete(user_id=user_id, actor=_admin(request))


class ChannelAdminForm(forms.ModelForm):
    """Checks what `channel_connect` would refuse, so a refusal is a form error rather than an
    "added successfully" with nothing saved. The service still decides under its lock."""

    def clean_external_id(self) -> str:
        try:
            return validators.clean_external_id(self.cleaned_data["external_id"])
        except InvalidInput as error:
            raise _as_form_error(error) from None

    def clean_name(self) -> str:
        try:
            return validators.clean_channel_name(self.cleaned_data["name"])
        except InvalidInput as error:
            raise _as_form_error(error) from None

    def clean(self) -> dict:
        cleaned = super().clean()
        user, platform = cleaned.get("user"), cleaned.get("platform")
        external_id = cleaned.get("external_id")
        if user and platform and external_id:
            taken = (
                Channel.objects.filter(
                    platform=platform, external_id=external_id, disconnected_at__isnull=True
                )
                .exclude(user=user)
                .exists()
            )
            if taken:
                self.add_error("external_id", "This account is already connected to another user.")
        return cleaned


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = ("platform", "external_id", "name", "user", "connected_at", "disconnected_at")
    list_filter = ("platform", ("disconnected_at", admin.EmptyFieldListFilter))
    search_fields = ("external_id", "name", "user__username")
    raw_id_fields = ("user",)
    fields = ("user", "platform", "external_id", "name", "connected_at", "disconnected_at")
    actions = ("disconnect",)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("connected_at", "disconnected_at")
        return self.fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # disconnect instead: it keeps the record and writes the outbox row

    def save_model(self, request, obj: Channel, form, change: bool) -> None:
        if change:
            # Every field of an existing channel is read-only: saving its page changes nothing
            # (connecting it again would reconnect a disconnected channel as a new one).
            return
        try:
            connection = services.channel_connect(
                user_id=obj.user_id,
                platform=obj.platform,
                external_id=obj.external_id,
                name=obj.name,
                actor=_admin(request),
            )
        except (InvalidInput, ChannelTaken) as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        obj.pk = connection.channel.pk

    @admin.action(description="Disconnect selected channels")
    def disconnect(self, request, queryset) -> None:
        active = queryset.filter(disconnected_at__isnull=True)
        for channel_id, user_id in active.values_list("pk", "user_id"):
            services.channel_disconnect(
                user_id=user_id, channel_id=channel_id, actor=_admin(request)
            )
        self.message_user(request, f"Disconnected {len(active)} channel(s).")


@admin.register(WizardStatusHistory)
class WizardStatusHistoryAdmin(admin.ModelAdmin):
    """The audit trail: read-only."""

    list_display = (
        "user",
        "version",
        "changed",
        "causes",
        "made_by",
        "occurred_at",
        "recorded_at",
    )
    list_select_related = ("user",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="actors")
    def made_by(self, entry: WizardStatusHistory) -> str:
        return ", ".join(
            actor["kind"] if actor["id"] is None else f"{actor['kind']} #{actor['id']}"
            for actor in entry.actors
        )

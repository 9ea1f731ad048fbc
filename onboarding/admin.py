"""Admin for users and onboarding data. Every onboarding edit goes through the services,
so an admin change writes its outbox row like any other."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm

from onboarding import services, validators
from onboarding.exceptions import ChannelTaken, InvalidInput
from onboarding.models import Channel, ManualPrompt, User, WizardStatusHistory

PROFILE_FIELDS = ("first_name", "last_name", "phone_number", "business_type")


def _as_form_error(error: InvalidInput) -> forms.ValidationError:
    return forms.ValidationError(error.message)


class OnboardingUserChangeForm(UserChangeForm):
    def clean_first_name(self) -> str:
        try:
            return validators.clean_name("first_name", self.cleaned_data["first_name"])
        except InvalidInput as error:
            raise _as_form_error(error) from None

    def clean_last_name(self) -> str:
        try:
            return validators.clean_name("last_name", self.cleaned_data["last_name"])
        except InvalidInput as error:
            raise _as_form_error(error) from None

    def clean_phone_number(self) -> str:
        try:
            return validators.normalize_phone_number(self.cleaned_data["phone_number"])
        except InvalidInput as error:
            raise _as_form_error(error) from None


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = OnboardingUserChangeForm
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "business_type",
        "wizard_completed_at",
        "is_active",
        "is_staff",
    )
    list_filter = ("is_active", "is_staff", "business_type")
    readonly_fields = ("onboarding_version", "wizard_completed_at", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Onboarding", {"fields": (*PROFILE_FIELDS, "wizard_completed_at", "onboarding_version")}),
        ("Contact", {"fields": ("email",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )

    def save_model(self, request, obj: User, form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        concrete = {field.name for field in User._meta.concrete_fields}
        routed = {*PROFILE_FIELDS, "is_active"}
        plain_fields = [
            name for name in form.changed_data if name in concrete and name not in routed
        ]
        if plain_fields:
            obj.save(update_fields=plain_fields)
        profile_changes = {
            name: form.cleaned_data[name] for name in PROFILE_FIELDS if name in form.changed_data
        }
        if profile_changes:
            services.profile_update(user_id=obj.pk, **profile_changes)
        if "is_active" in form.changed_data:
            services.user_set_active(user_id=obj.pk, is_active=form.cleaned_data["is_active"])
        obj.refresh_from_db()


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
            saved = services.manual_prompt_save(user_id=obj.user_id, content=obj.content)
        except InvalidInput as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        obj.pk = saved.pk

    def delete_model(self, request, obj: ManualPrompt) -> None:
        services.manual_prompt_delete(user_id=obj.user_id)

    def delete_queryset(self, request, queryset) -> None:
        for user_id in queryset.values_list("user_id", flat=True):
            services.manual_prompt_delete(user_id=user_id)


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
            )
        except (InvalidInput, ChannelTaken) as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        obj.pk = connection.channel.pk

    @admin.action(description="Disconnect selected channels")
    def disconnect(self, request, queryset) -> None:
        active = queryset.filter(disconnected_at__isnull=True)
        for channel_id, user_id in active.values_list("pk", "user_id"):
            services.channel_disconnect(user_id=user_id, channel_id=channel_id)
        self.message_user(request, f"Disconnected {len(active)} channel(s).")


@admin.register(WizardStatusHistory)
class WizardStatusHistoryAdmin(admin.ModelAdmin):
    """The audit trail: read-only."""

    list_display = ("user", "version", "changed", "causes", "occurred_at", "recorded_at")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

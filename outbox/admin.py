from django.contrib import admin

from outbox.models import OutboxEvent
from outbox.services import outbox_retry


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("pending", "Pending"), ("failed", "Failed"), ("relayed", "Relayed"))

    def queryset(self, request, queryset):
        value = self.value()
        if value == "pending":
            return queryset.pending()
        if value == "failed":
            return queryset.failed()
        if value == "relayed":
            return queryset.relayed()
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "user",
        "topic",
        "version",
        "actor_kind",
        "actor_id",
        "state",
        "attempts",
        "created_at",
        "next_attempt_at",
        "relayed_at",
        "failed_at",
    )
    list_filter = (StateFilter, "topic")
    search_fields = ("user__username",)
    ordering = ("-id",)
    actions = ("retry",)
    list_select_related = ("user",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("outbox.change_outboxevent")

    @admin.action(description="Retry selected failed events", permissions=["retry"])
    def retry(self, request, queryset) -> None:
        count = outbox_retry(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} event(s) queued again.")

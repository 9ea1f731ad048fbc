"""The outbox admin: it filters rows by state, retries failed rows, and edits none."""

import pytest
from django.utils import timezone

from outbox.models import OutboxEvent, Topic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("state", ["pending", "failed", "relayed"])
def test_outbox_changelist_filters_by_state(admin_client, events_in_every_state, state):
    response = admin_client.get("/admin/outbox/outboxevent/", {"state": state})

    assert response.status_code == 200
    assert [event.pk for event in response.context["cl"].result_list] == [
        events_in_every_state[state].pk
    ]


def test_outbox_changelist_unfiltered_lists_every_row(admin_client, events_in_every_state):
    response = admin_client.get("/admin/outbox/outboxevent/")

    assert response.status_code == 200
    assert [event.pk for event in response.context["cl"].result_list] == sorted(
        (event.pk for event in events_in_every_state.values()), reverse=True
    )


def test_outbox_retry_action_resets_failed_rows_only(admin_client, events_in_every_state):
    failed = events_in_every_state["failed"]
    pending = events_in_every_state["pending"]
    relayed = events_in_every_state["relayed"]
    before = timezone.now()

    response = admin_client.post(
        "/admin/outbox/outboxevent/",
        {
            "action": "retry",
            "_selected_action": [failed.pk, pending.pk, relayed.pk],
            "index": "0",
        },
    )

    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.failed_at, failed.attempts, failed.last_error) == (None, 0, "")
    assert failed.next_attempt_at >= before
    assert failed.state == "pending"
    for untouched in (pending, relayed):
        assert OutboxEvent.objects.filter(
            pk=untouched.pk,
            attempts=untouched.attempts,
            relayed_at=untouched.relayed_at,
            failed_at__isnull=True,
            next_attempt_at=untouched.next_attempt_at,
        ).exists()
    pending_ids = (
        admin_client.get("/admin/outbox/outboxevent/", {"state": "pending"})
        .context["cl"]
        .result_list
    )
    assert sorted(event.pk for event in pending_ids) == sorted([pending.pk, failed.pk])


def test_outbox_rows_cannot_be_added_or_edited(admin_client, events_in_every_state):
    event = events_in_every_state["pending"]

    assert admin_client.get("/admin/outbox/outboxevent/add/").status_code == 403
    response = admin_client.post(
        f"/admin/outbox/outboxevent/{event.pk}/change/", {"version": 99, "topic": "x"}
    )
    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.version, event.topic) == (1, Topic.PROFILE_UPDATED)

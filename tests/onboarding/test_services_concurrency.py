"""Concurrent writers, each thread on its own database connection, released by a barrier."""

from typing import Any

import pytest

from onboarding import services
from onboarding.exceptions import ChannelTaken
from onboarding.models import Channel, ManualPrompt
from outbox.models import OutboxEvent, Topic
from tests.concurrency import run_behind_barrier
from tests.factories import make_user, profile_of

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
WRITES_PER_THREAD = 10


def test_concurrent_writes_of_one_user_get_distinct_consecutive_versions(settings):
    settings.CHANNELS_PER_USER_LIMIT = THREADS * WRITES_PER_THREAD
    user = make_user()

    def writer(thread: int) -> list[tuple[str, int | None, Any]]:
        """Ten writes, each a real change; returns (kind, version if known, key) per write."""
        done = []
        for step in range(WRITES_PER_THREAD):
            key = f"{thread}-{step}"
            match step % 3:
                case 0:
                    updated = services.profile_update(user_id=user.pk, first_name=f"name-{key}")
                    done.append(("profile", updated.version, key))
                case 1:
                    services.manual_prompt_save(user_id=user.pk, content=f"prompt-{key}")
                    done.append(("prompt", None, key))
                case 2:
                    connected = services.channel_connect(
                        user_id=user.pk, platform="telegram", external_id=f"tg-{key}"
                    )
                    assert connected.created is True
                    done.append(("channel", connected.channel.pk, key))
        return done

    outcomes = run_behind_barrier([lambda n=n: writer(n) for n in range(THREADS)])

    assert [outcome for outcome in outcomes if not isinstance(outcome, list)] == []
    total = THREADS * WRITES_PER_THREAD
    rows = list(
        OutboxEvent.objects.filter(user=user).values_list("version", "topic", "payload", "pk")
    )
    versions = [version for version, *_ in rows]
    assert len(versions) == total
    assert len(set(versions)) == total
    assert set(versions) == set(range(1, total + 1))
    assert OutboxEvent.objects.exclude(user=user).count() == 0
    assert profile_of(user).version == total

    by_version = {version: (topic, payload) for version, topic, payload, _ in rows}
    topics = [topic for topic, _ in by_version.values()]
    assert topics.count(Topic.PROFILE_UPDATED) == THREADS * 4
    assert topics.count(Topic.MANUAL_PROMPT_SAVED) == THREADS * 3
    assert topics.count(Topic.CHANNEL_CONNECTED) == THREADS * 3

    # Each profile write saw its own version, and the row at that version is its row.
    profile_writes = [
        (version, key)
        for outcome in outcomes
        for kind, version, key in outcome
        if kind == "profile"
    ]
    for version, _ in profile_writes:
        assert by_version[version] == (Topic.PROFILE_UPDATED, {"fields": ["first_name"]})
    # The last committed profile write is the value that stuck.
    _, last_key = max(profile_writes)
    assert profile_of(user).first_name == f"name-{last_key}"

    # Each channel write has exactly one row, and a thread's own writes are in its order.
    channel_version = {
        payload["channel_id"]: version
        for version, (topic, payload) in by_version.items()
        if topic == Topic.CHANNEL_CONNECTED
    }
    channel_ids = [
        channel_id for outcome in outcomes for kind, channel_id, _ in outcome if kind == "channel"
    ]
    assert sorted(channel_version) == sorted(channel_ids)
    assert Channel.objects.filter(user=user, disconnected_at__isnull=True).count() == THREADS * 3
    for outcome in outcomes:
        own_versions = []
        for kind, value, _ in outcome:
            if kind == "profile":
                own_versions.append(value)
            elif kind == "channel":
                own_versions.append(channel_version[value])
        assert len(own_versions) == 7
        assert own_versions == sorted(own_versions)

    # The prompt left behind is the last one some thread wrote.
    last_prompts = {f"prompt-{n}-7" for n in range(THREADS)}
    assert ManualPrompt.objects.get(user=user).content in last_prompts


def test_two_users_racing_for_one_account_one_wins():
    rounds = 5
    first, second = make_user(), make_user()

    for round_ in range(rounds):
        external_id = f"ig-contested-{round_}"
        outcomes = run_behind_barrier(
            [
                lambda user=user, external_id=external_id: services.channel_connect(
                    user_id=user.pk, platform="instagram", external_id=external_id
                )
                for user in (first, second)
            ]
        )

        winners = [
            index
            for index, outcome in enumerate(outcomes)
            if isinstance(outcome, services.ChannelConnection)
        ]
        losers = [
            index for index, outcome in enumerate(outcomes) if isinstance(outcome, ChannelTaken)
        ]
        assert len(winners) == 1
        assert len(losers) == 1
        winner = (first, second)[winners[0]]
        channel = outcomes[winners[0]].channel
        assert outcomes[winners[0]].created is True
        assert list(
            Channel.objects.filter(external_id=external_id).values_list(
                "pk", "user_id", "disconnected_at"
            )
        ) == [(channel.pk, winner.pk, None)]
        assert list(
            OutboxEvent.objects.filter(payload__channel_id=channel.pk).values_list(
                "user_id", "topic", "payload"
            )
        ) == [
            (
                winner.pk,
                Topic.CHANNEL_CONNECTED,
                {"channel_id": channel.pk, "platform": "instagram"},
            )
        ]

    # One row per round in total, and each user's versions are exactly its wins.
    assert OutboxEvent.objects.count() == rounds
    for user in (first, second):
        won = OutboxEvent.objects.filter(user=user).count()
        assert sorted(
            OutboxEvent.objects.filter(user=user).values_list("version", flat=True)
        ) == list(range(1, won + 1))
        assert profile_of(user).version == won

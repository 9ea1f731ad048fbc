"""Reads of onboarding data, and the one pure computation of the wizard status.

The HTTP fallback, the socket's first message and the relay all call `wizard_status_get`,
so they can never disagree.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.utils import timezone

from onboarding.exceptions import NotFound
from onboarding.models import (
    Channel,
    ManualPrompt,
    OnboardingProfile,
    Platform,
    SignIn,
    User,
    WizardStatusHistory,
)
from onboarding.sql import db_datetime, rows_by_name
from onboarding.status import (
    PROFILE_REQUIREMENTS,
    OnboardingSnapshot,
    WizardStatus,
    compute_wizard_status,
)
from onboarding.tokens import TokenClaims


def _distinct_ids(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(value) for value in ids))


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


@lru_cache(maxsize=256)  # one statement per batch size: built once, not on every read
def _snapshot_sql(
    count: int, *, with_latest_history: bool = False, with_sign_in: bool = False
) -> str:
    # Hand-written: this runs for every push, refresh and socket connect, and building the
    # same statement with the ORM costs several times more than running it. A user without
    # an onboarding row yet reads as empty data at version 0.
    user, profile, prompt, channel, history, sign_in = (
        model._meta.db_table
        for model in (User, OnboardingProfile, ManualPrompt, Channel, WizardStatusHistory, SignIn)
    )
    placeholders = _placeholders(count)
    quote = connection.ops.quote_name
    profile_columns = ", ".join(
        f"COALESCE(o.{quote(name)}, '') AS {quote(name)}" for name in PROFILE_REQUIREMENTS
    )
    latest_history = (
        f"""
               , (SELECT h.version FROM {history} h WHERE h.user_id = u.id
                  ORDER BY h.version DESC LIMIT 1) AS history_version
               , (SELECT h.status FROM {history} h WHERE h.user_id = u.id
                  ORDER BY h.version DESC LIMIT 1) AS history_status"""
        if with_latest_history
        else ""
    )
    live_sign_in = (
        f"""
               , EXISTS (SELECT 1 FROM {sign_in} s WHERE s.id = %s AND s.user_id = u.id
                         AND s.ended_at IS NULL AND s.expires_at > %s) AS sign_in_live"""
        if with_sign_in
        else ""
    )
    return f"""
        SELECT u.id AS user_id, COALESCE(o.version, 0) AS version, {profile_columns},
               EXISTS (SELECT 1 FROM {prompt} p WHERE p.user_id = u.id AND p.content <> '')
                   AS has_manual_prompt,
               EXISTS (SELECT 1 FROM {channel} c WHERE c.user_id = u.id
                       AND c.platform = %s AND c.disconnected_at IS NULL) AS instagram_connected,
               EXISTS (SELECT 1 FROM {channel} c WHERE c.user_id = u.id
                       AND c.platform = %s AND c.disconnected_at IS NULL) AS telegram_connected,
               o.wizard_completed_at, u.is_active, u.credentials_generation
               {latest_history} {live_sign_in}
        FROM {user} u LEFT JOIN {profile} o ON o.user_id = u.id
        WHERE u.id IN ({placeholders})
    """


def _snapshot_rows(user_ids: Sequence[int], *, with_latest_history: bool) -> list[dict[str, Any]]:
    user_ids = _distinct_ids(user_ids)
    if not user_ids:
        return []
    sql = _snapshot_sql(len(user_ids), with_latest_history=with_latest_history)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Platform.INSTAGRAM, Platform.TELEGRAM, *user_ids])
        return rows_by_name(cursor)


_SNAPSHOT_FIELDS = tuple(each.name for each in fields(OnboardingSnapshot) if each.name != "profile")


def _snapshot(row: dict[str, Any]) -> OnboardingSnapshot:
    values: dict[str, Any] = {name: row[name] for name in _SNAPSHOT_FIELDS}
    values["profile"] = {name: row[name] for name in PROFILE_REQUIREMENTS}
    for flag in ("has_manual_prompt", "instagram_connected", "telegram_connected", "is_active"):
        values[flag] = bool(values[flag])  # SQLite answers 0 and 1
    values["wizard_completed_at"] = db_datetime(values["wizard_completed_at"])
    return OnboardingSnapshot(**values)


def onboarding_snapshots_get(*, user_ids: Sequence[int]) -> dict[int, OnboardingSnapshot]:
    """Snapshots of many users in one statement, so each is internally consistent."""
    rows = _snapshot_rows(user_ids, with_latest_history=False)
    return {row["user_id"]: _snapshot(row) for row in rows}


def onboarding_snapshot_get(*, user_id: int) -> OnboardingSnapshot:
    snapshot = onboarding_snapshots_get(user_ids=[user_id]).get(user_id)
    if snapshot is None:
        raise NotFound(f"User {user_id} does not exist.")
    return snapshot


def wizard_status_get(*, user_id: int) -> WizardStatus:
    return compute_wizard_status(
        onboarding_snapshot_get(user_id=user_id), computed_at=timezone.now()
    )


def wizard_statuses_get(*, user_ids: Sequence[int]) -> dict[int, WizardStatus]:
    """Current statuses of many users in one query; deleted users are absent."""
    now = timezone.now()
    return {
        user_id: compute_wizard_status(snapshot, computed_at=now)
        for user_id, snapshot in onboarding_snapshots_get(user_ids=user_ids).items()
    }


@dataclass(frozen=True, slots=True)
class SocketOpening:
    """What a socket's handshake reads: the user's current status (with the account's activity
    and credentials generation), and whether the sign-in its token names is still live (None
    when no sign-in was asked about)."""

    status: WizardStatus
    sign_in_live: bool | None


def socket_opening_get(*, user_id: int, sign_in_id: int | None = None) -> SocketOpening | None:
    """The first status and the credentials check of a new socket, in one statement.

    Every reconnect of a deploy's storm asks this once: the token's sign-in, the account's
    activity and credentials generation come with the status instead of in a query of their
    own. None if the user does not exist.
    """
    sql = _snapshot_sql(1, with_sign_in=sign_in_id is not None)
    params: list[Any] = [Platform.INSTAGRAM, Platform.TELEGRAM]
    if sign_in_id is not None:
        params += [sign_in_id, connection.ops.adapt_datetimefield_value(timezone.now())]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, user_id])
        rows = rows_by_name(cursor)
    if not rows:
        return None
    [row] = rows
    live = None if sign_in_id is None else bool(row["sign_in_live"])
    status = compute_wizard_status(_snapshot(row), computed_at=timezone.now())
    return SocketOpening(status=status, sign_in_live=live)


@dataclass(frozen=True, slots=True)
class SocketCheck:
    """What an open socket is compared with every few seconds (`realtime.reconcile`)."""

    version: int
    is_active: bool
    credentials_generation: int


@dataclass(frozen=True, slots=True)
class SocketsHeld:
    """What one web process's sockets of each user hold, one list entry per user."""

    user_ids: list[int]
    lowest_versions: list[int]
    highest_versions: list[int]
    oldest_generations: list[int]


def socket_checks_differing(*, held: SocketsHeld) -> dict[int, SocketCheck | None]:
    """The checks of the users whose sockets the database disagrees with: behind or ahead of
    its version, opened under an older credentials generation, an inactive account; None
    for a user who no longer exists. Everyone else is left out.

    The reconciler's read every few seconds for all sockets of a web process: the database
    compares, so a round at 10,000 sockets reads back the few rows that need something
    instead of 10,000 (and the ids go as arrays: a parameter per id cost tens of
    milliseconds of the process's time, the GIL, at a thousand).
    """
    if not held.user_ids:
        return {}
    if connection.vendor != "postgresql":
        return _socket_checks_differing_in_python(held)
    user, profile = User._meta.db_table, OnboardingProfile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT k.id, u.id IS NOT NULL, COALESCE(o.version, 0), u.is_active,
                   u.credentials_generation
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
                 AS k(id, low, high, generation)
            LEFT JOIN {user} u ON u.id = k.id
            LEFT JOIN {profile} o ON o.user_id = k.id
            WHERE u.id IS NULL OR NOT u.is_active OR u.credentials_generation > k.generation
               OR COALESCE(o.version, 0) > k.low OR COALESCE(o.version, 0) < k.high
            """,
            [
                _int_array(held.user_ids),
                _int_array(held.lowest_versions),
                _int_array(held.highest_versions),
                _int_array(held.oldest_generations),
            ],
        )
        rows = cursor.fetchall()
    return {
        user_id: SocketCheck(version=version, is_active=is_active, credentials_generation=gen)
        if exists
        else None
        for user_id, exists, version, is_active, gen in rows
    }


def _int_array(values: Sequence[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _socket_checks_differing_in_python(held: SocketsHeld) -> dict[int, SocketCheck | None]:
    """The same answer on SQLite (the zero-setup default), compared here."""
    checks = socket_checks_get(user_ids=held.user_ids)
    differing: dict[int, SocketCheck | None] = {}
    columns = (held.lowest_versions, held.highest_versions, held.oldest_generations)
    for user_id, low, high, generation in zip(held.user_ids, *columns, strict=True):
        check = checks.get(user_id)
        if (
            check is None
            or not check.is_active
            or check.credentials_generation > generation
            or check.version > low
            or check.version < high
        ):
            differing[user_id] = check
    return differing


def socket_checks_get(*, user_ids: Sequence[int]) -> dict[int, SocketCheck]:
    """Version, activity and credentials generation per user."""
    user_ids = _distinct_ids(user_ids)
    if not user_ids:
        return {}
    user, profile = User._meta.db_table, OnboardingProfile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.id, COALESCE(o.version, 0), u.is_active, u.credentials_generation "
            f"FROM {user} u LEFT JOIN {profile} o ON o.user_id = u.id "
            f"WHERE u.id IN ({_placeholders(len(user_ids))})",
            user_ids,
        )
        rows = cursor.fetchall()
    return {
        user_id: SocketCheck(
            version=version, is_active=bool(is_active), credentials_generation=generation
        )
        for user_id, version, is_active, generation in rows
    }


def _json(value: Any) -> Any:
    """A JSON column read with a raw cursor: SQLite gives text, PostgreSQL decoded values."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@dataclass(frozen=True, slots=True)
class LatestHistory:
    user_id: int
    version: int
    status: dict[str, Any]


def status_history_latest(*, user_ids: Sequence[int]) -> dict[int, LatestHistory]:
    """Each user's newest history entry, in one index-backed statement."""
    user_ids = _distinct_ids(user_ids)
    if not user_ids:
        return {}
    table = WizardStatusHistory._meta.db_table
    placeholders = _placeholders(len(user_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT h.user_id, h.version, h.status FROM {table} h
            WHERE h.user_id IN ({placeholders})
              AND h.version = (SELECT MAX(n.version) FROM {table} n WHERE n.user_id = h.user_id)
            """,
            user_ids,
        )
        rows = cursor.fetchall()
    return {
        user_id: LatestHistory(
            user_id=user_id,
            version=version,
            status=_json(status),
        )
        for user_id, version, status in rows
    }


def wizard_statuses_with_history_get(
    *, user_ids: Sequence[int]
) -> tuple[dict[int, WizardStatus], dict[int, LatestHistory]]:
    """Current statuses and each user's newest history entry, in one statement.

    The relay's read: what it records is decided against the entry read with the status.
    """
    now = timezone.now()
    statuses: dict[int, WizardStatus] = {}
    latest: dict[int, LatestHistory] = {}
    for row in _snapshot_rows(user_ids, with_latest_history=True):
        user_id = row["user_id"]
        statuses[user_id] = compute_wizard_status(_snapshot(row), computed_at=now)
        if row["history_version"] is not None:
            latest[user_id] = LatestHistory(
                user_id=user_id,
                version=row["history_version"],
                status=_json(row["history_status"]),
            )
    return statuses, latest


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[WizardStatusHistory]
    next_before_version: int | None


def status_history_page(
    *, user_id: int, limit: int, before_version: int | None = None
) -> HistoryPage:
    """Newest first; `next_before_version` continues the listing, None at the end."""
    entries = WizardStatusHistory.objects.filter(user_id=user_id).order_by("-version")
    if before_version is not None:
        entries = entries.filter(version__lt=before_version)
    items = list(entries[: limit + 1])
    has_more = len(items) > limit
    items = items[:limit]
    return HistoryPage(items=items, next_before_version=items[-1].version if has_more else None)


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Whom a well-signed access token names, and whether it still stands."""

    user: User | None
    revoked: bool = False

    @property
    def active_user(self) -> User | None:
        """The user, when the token is live and the account active: what the API accepts."""
        if self.user is None or self.revoked or not self.user.is_active:
            return None
        return self.user


def token_holder_get(*, claims: TokenClaims) -> TokenHolder:
    """The user of an access token, with its sign-in checked, in one statement.

    Every API request with a token asks, so revocation costs no round trip of its own: the
    generation is compared with the user's row and the sign-in is looked up by its key in
    the same query. A raw query: the ORM's `filter(...).first()` spends ~1 ms building it.
    """
    sign_ins = SignIn._meta.db_table
    users = User.objects.raw(
        f"""
        SELECT u.*, EXISTS (
            SELECT 1 FROM {sign_ins} s WHERE s.id = %s AND s.user_id = u.id
              AND s.ended_at IS NULL AND s.expires_at > %s
        ) AS sign_in_live
        FROM {User._meta.db_table} u WHERE u.id = %s
        """,
        [
            claims.sign_in_id,
            connection.ops.adapt_datetimefield_value(timezone.now()),
            claims.user_id,
        ],
    )
    user = next(iter(users), None)
    if user is None:
        return TokenHolder(user=None)
    revoked = not user.sign_in_live or user.credentials_generation != claims.generation
    return TokenHolder(user=user, revoked=revoked)


def user_credentials_get(*, user_id: int) -> User | None:
    """The user a ticket or session names (is_active and generation are checked by callers)."""
    return User.objects.filter(pk=user_id).first()


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """`GET /accounts/me`: the account and its onboarding data."""

    id: int
    username: str
    email: str
    profile: Mapping[str, str]  # a value per PROFILE_REQUIREMENTS key
    wizard_completed_at: datetime | None

    def as_answer(self) -> dict[str, Any]:
        """The answer's object: the account, each profile field, the completion."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            **self.profile,
            "wizard_completed_at": self.wizard_completed_at,
        }


def account_profile_get(*, user: User) -> AccountProfile:
    profile = OnboardingProfile.objects.filter(user_id=user.pk).first() or OnboardingProfile()
    return account_profile(user=user, profile=profile)


def account_profile(*, user: User, profile: OnboardingProfile) -> AccountProfile:
    return AccountProfile(
        id=user.pk,
        username=user.username,
        email=user.email,
        profile={name: getattr(profile, name) for name in PROFILE_REQUIREMENTS},
        wizard_completed_at=profile.wizard_completed_at,
    )


def manual_prompt_get(*, user_id: int) -> ManualPrompt | None:
    return ManualPrompt.objects.filter(user_id=user_id).first()


def channel_list(*, user_id: int) -> list[Channel]:
    return list(
        Channel.objects.filter(user_id=user_id, disconnected_at__isnull=True).order_by(
            "connected_at", "id"
        )
    )

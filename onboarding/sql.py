"""Raw SQL's two dialects in one place: rows by column name, datetimes, locks, commits.

The embedded default is SQLite and production is PostgreSQL; the hand-written statements
(the status snapshot, the outbox claim) and the relay's locks go through these. SQLite
takes one writer at a time, so what PostgreSQL needs locks for, it serializes already.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def rows_by_name(cursor) -> list[dict[str, Any]]:
    """The cursor's remaining rows as dicts keyed by column name, never by position."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def db_datetime(value: datetime | str | None) -> datetime | None:
    """A datetime column read with a raw cursor: SQLite gives text, PostgreSQL aware values."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def skip_locked() -> str:
    """`FOR UPDATE SKIP LOCKED` where the database has it (a claim's row locks)."""
    return "FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""


def advisory_transaction_locks(keys: Sequence[int]) -> None:
    """Transaction-scoped advisory locks on `keys`, taken in order (no deadlock); PostgreSQL."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(id) FROM unnest(%s::bigint[]) AS id", [sorted(keys)]
        )


def commit_without_flush() -> None:
    """The current transaction's commit will not wait for the disk (PostgreSQL).

    `SET LOCAL` ends with the transaction. A session-level `SET` would outlive it, and behind
    PgBouncer in transaction pooling mode stay on a server connection that another process's
    transaction (a web process's durable write) gets next.
    """
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("commit_without_flush must run inside a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")

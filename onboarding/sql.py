"""Raw SQL's two dialects in one place: rows read by column name, datetimes either way.

The embedded default is SQLite and production is PostgreSQL; the hand-written statements
(the status snapshot, the outbox claim) read their rows through these.
"""

from datetime import UTC, datetime
from typing import Any

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

"""One-time socket tickets: short-lived, single use, kept in Redis (only a hash of each).

A ticket remembers the credentials generation of the request that minted it, so a password
change or "end all sessions" voids the tickets not yet redeemed.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass

from django.conf import settings

from config.redis import async_redis_client, redis_client

_KEY_PREFIX = "wizard:ticket:"
_TICKET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_VALUE_SHAPE = re.compile(rb"^(\d{1,19}):(\d{1,19})$")


@dataclass(frozen=True, slots=True)
class TicketHolder:
    user_id: int
    credentials_generation: int


def _key(ticket: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(*, user_id: int, credentials_generation: int) -> str:
    ticket = secrets.token_urlsafe(32)
    redis_client().set(
        _key(ticket),
        f"{user_id}:{credentials_generation}",
        ex=settings.WEBSOCKET_TICKET_TTL_SECONDS,
    )
    return ticket


async def ticket_redeem(ticket: str) -> TicketHolder | None:
    """Whom the ticket was issued to, once; None if unknown, expired or used."""
    if not _TICKET_SHAPE.match(ticket):
        return None
    value = await async_redis_client().getdel(_key(ticket))
    match = _VALUE_SHAPE.match(value) if value is not None else None
    if match is None:
        return None
    return TicketHolder(user_id=int(match[1]), credentials_generation=int(match[2]))

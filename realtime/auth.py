"""Socket authentication: whom a connection's credentials name, first match wins: a one-time
`?ticket=`, a JWT `?token=`, then the Django session cookie.

Each way also yields the credentials generation the socket was opened under: a revocation
that moves the user's generation on closes the socket (the relay's push, or the reconciler).
The consumer confirms the claim with the socket's first status read (`SocketClaim`).
"""

from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from onboarding.exceptions import InvalidToken
from onboarding.selectors import SocketOpening, user_credentials_get
from onboarding.tokens import token_claims
from realtime.tickets import ticket_redeem

UNAUTHENTICATED = "unauthenticated"
INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class SocketClaim:
    """Whom a socket's credentials name, and under which generation.

    A token or a ticket is checked without the database here; what only the database knows
    (the account is active, the generation current, the token's sign-in live) comes with the
    socket's first status, in the one statement of its handshake (`confirmed_by`).
    """

    user_id: int | None  # None: refused already
    generation: int = 0
    sign_in_id: int | None = None  # a token's sign-in, which must still be live

    def confirmed_by(self, opening: SocketOpening | None) -> str | None:
        """None if the credentials stand, else UNAUTHENTICATED or INACTIVE.

        An inactive account is 4403 even with revoked credentials (deactivation revokes).
        """
        if self.user_id is None or opening is None:
            return UNAUTHENTICATED
        if not opening.status.is_active:
            return INACTIVE
        if opening.sign_in_live is False:
            return UNAUTHENTICATED
        if opening.status.credentials_generation != self.generation:
            return UNAUTHENTICATED
        return None


_REFUSED = SocketClaim(user_id=None)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _session_claim(session_key: str) -> SocketClaim:
    """Django's own session check: the stored hash covers the password and the generation."""
    store = import_string(settings.SESSION_ENGINE + ".SessionStore")(session_key)
    session = store.load()
    raw_id = session.get(SESSION_KEY)
    if raw_id is None:
        return _REFUSED
    user = user_credentials_get(user_id=raw_id)
    if user is None:
        return _REFUSED
    if user.is_active and not constant_time_compare(
        session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    ):
        return _REFUSED
    return SocketClaim(user_id=user.pk, generation=user.credentials_generation)


def _token_claim(token: str) -> SocketClaim:
    try:
        claims = token_claims(token, expected_type="access")
    except InvalidToken:
        return _REFUSED
    return SocketClaim(
        user_id=claims.user_id, generation=claims.generation, sign_in_id=claims.sign_in_id
    )


async def resolve_claim(scope) -> SocketClaim:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if "ticket" in query:
        holder = await ticket_redeem(query["ticket"][0])
        if holder is None:
            return _REFUSED
        return SocketClaim(user_id=holder.user_id, generation=holder.credentials_generation)
    if "token" in query:
        return _token_claim(query["token"][0])
    cookies = parse_cookie(_header(scope, b"cookie") or "")
    session_key = cookies.get(settings.SESSION_COOKIE_NAME)
    if session_key and len(session_key) <= 64:
        return await database_sync_to_async(_session_claim)(session_key)
    return _REFUSED


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        scope = {**scope, "socket_claim": await resolve_claim(scope)}
        return await super().__call__(scope, receive, send)

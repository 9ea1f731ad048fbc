"""Socket authentication: resolves the user once per connection, first match wins:
a one-time `?ticket=`, a JWT `?token=`, then the Django session cookie.

Each way also yields the credentials generation the socket was opened under: a revocation
that moves the user's generation on closes the socket (the relay's push, or the reconciler).
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
from onboarding.models import User
from onboarding.selectors import token_holder_get, user_credentials_get
from onboarding.tokens import token_claims
from realtime.tickets import ticket_redeem

UNAUTHENTICATED = "unauthenticated"
INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class SocketCredentials:
    user: User | None
    failure: str | None  # None, UNAUTHENTICATED or INACTIVE
    generation: int = 0


_REFUSED = SocketCredentials(user=None, failure=UNAUTHENTICATED)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _checked(user: User | None, *, generation: int, revoked: bool = False) -> SocketCredentials:
    """An inactive account is 4403 even with revoked credentials (deactivation revokes)."""
    if user is None:
        return _REFUSED
    if not user.is_active:
        return SocketCredentials(user=user, failure=INACTIVE, generation=generation)
    if revoked or generation != user.credentials_generation:
        return _REFUSED
    return SocketCredentials(user=user, failure=None, generation=generation)


def _session_credentials(session_key: str) -> SocketCredentials:
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
    return _checked(user, generation=user.credentials_generation)


def _token_credentials(token: str) -> SocketCredentials:
    try:
        claims = token_claims(token, expected_type="access")
    except InvalidToken:
        return _REFUSED
    holder = token_holder_get(claims=claims)
    return _checked(holder.user, generation=claims.generation, revoked=holder.revoked)


async def resolve_credentials(scope) -> SocketCredentials:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if "ticket" in query:
        holder = await ticket_redeem(query["ticket"][0])
        if holder is None:
            return _REFUSED
        user = await database_sync_to_async(user_credentials_get)(user_id=holder.user_id)
        return _checked(user, generation=holder.credentials_generation)
    if "token" in query:
        return await database_sync_to_async(_token_credentials)(query["token"][0])
    cookies = parse_cookie(_header(scope, b"cookie") or "")
    session_key = cookies.get(settings.SESSION_COOKIE_NAME)
    if session_key and len(session_key) <= 64:
        return await database_sync_to_async(_session_credentials)(session_key)
    return _REFUSED


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        credentials = await resolve_credentials(scope)
        scope = {
            **scope,
            "user": credentials.user,
            "auth_failure": credentials.failure,
            "credentials_generation": credentials.generation,
        }
        return await super().__call__(scope, receive, send)

"""Socket authentication: resolves the user once per connection, first match wins:
a one-time `?ticket=`, a JWT `?token=`, then the Django session cookie."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from onboarding.exceptions import InvalidToken
from onboarding.tokens import token_user_id
from realtime.tickets import ticket_redeem

UNAUTHENTICATED = "unauthenticated"
INACTIVE = "inactive"


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _session_user_id(session_key: str):
    """The user a session belongs to, or None; checks the session hash like Django does."""
    store = import_string(settings.SESSION_ENGINE + ".SessionStore")(session_key)
    session = store.load()
    raw_id = session.get(SESSION_KEY)
    if raw_id is None:
        return None
    user = get_user_model().objects.filter(pk=raw_id).first()
    if user is None:
        return None
    if not constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return None
    return user


def _user_by_id(user_id: int):
    return get_user_model().objects.filter(pk=user_id).first()


async def resolve_user(scope):
    """(user, failure): failure is None, UNAUTHENTICATED or INACTIVE."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    user = None
    if "ticket" in query:
        user_id = await ticket_redeem(query["ticket"][0])
        if user_id is not None:
            user = await database_sync_to_async(_user_by_id)(user_id)
    elif "token" in query:
        try:
            user_id = token_user_id(query["token"][0], expected_type="access")
        except InvalidToken:
            user_id = None
        if user_id is not None:
            user = await database_sync_to_async(_user_by_id)(user_id)
    else:
        cookies = parse_cookie(_header(scope, b"cookie") or "")
        session_key = cookies.get(settings.SESSION_COOKIE_NAME)
        if session_key and len(session_key) <= 64:
            user = await database_sync_to_async(_session_user_id)(session_key)
    if user is None:
        return None, UNAUTHENTICATED
    if not user.is_active:
        return user, INACTIVE
    return user, None


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        user, failure = await resolve_user(scope)
        scope = {**scope, "user": user, "auth_failure": failure}
        return await super().__call__(scope, receive, send)

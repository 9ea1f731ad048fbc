"""Ninja authentication: a Bearer access token, or the Django session with CSRF."""

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from onboarding.exceptions import InvalidToken
from onboarding.selectors import token_holder_get
from onboarding.tokens import token_claims


class BearerTokenAuth(HttpBearer):
    """A live access token of an active user: one query checks the user, the credentials
    generation and the sign-in together."""

    def authenticate(self, request: HttpRequest, token: str):
        try:
            claims = token_claims(token, expected_type="access")
        except InvalidToken:
            return None
        user = token_holder_get(claims=claims).active_user
        if user is not None:
            request.user = user
            request.token_claims = claims  # logout ends this token's sign-in
        return user


class SessionCookieAuth(APIKeyCookie):
    """Session auth that answers 401 (not 403) when there is no session at all.

    Ninja's own SessionAuth checks CSRF before it knows whether anyone is logged in, so an
    anonymous POST would get 403; here CSRF is checked only for a logged-in session.
    """

    param_name = "sessionid"

    def __init__(self) -> None:
        super().__init__(csrf=False)

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(settings.SESSION_COOKIE_NAME)

    def authenticate(self, request: HttpRequest, key: str | None):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        # Django's CSRF check reads a form body from the stream; read the body first, so the
        # operation can still parse it afterwards (else: RawPostDataException, a 500).
        request.body  # noqa: B018
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise HttpError(403, "CSRF check failed.")
        return user

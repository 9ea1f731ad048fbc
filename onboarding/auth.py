"""Ninja authentication: a Bearer access token, or the Django session with CSRF."""

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from onboarding.exceptions import InvalidToken
from onboarding.selectors import active_user_get
from onboarding.tokens import token_user_id


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        try:
            user_id = token_user_id(token, expected_type="access")
        except InvalidToken:
            return None
        user = active_user_get(user_id=user_id)
        if user is not None:
            request.user = user
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
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise HttpError(403, "CSRF check failed.")
        return user

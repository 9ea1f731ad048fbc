"""The NinjaAPI: routers of every app, default auth, and domain errors mapped to answers once."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.parser import Parser

from onboarding.api import router as onboarding_router
from onboarding.auth import BearerTokenAuth, SessionCookieAuth
from onboarding.exceptions import (
    ChannelTaken,
    InvalidInput,
    InvalidToken,
    NotFound,
    PasswordRejected,
    UsernameTaken,
    WizardIncomplete,
)
from realtime.api import router as realtime_router

logger = logging.getLogger(__name__)


class JsonBodyParser(Parser):
    """Read a body only when it is declared as JSON (Ninja answers 400 otherwise).

    An HTML form on another site can post JSON-looking text as text/plain without a CORS
    preflight, and /auth/login and /auth/register take no CSRF token: it could log a browser
    into the attacker's account. A JSON Content-Type cannot be sent cross-site unpreflighted.
    """

    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise ValueError("Content-Type must be application/json.")
        return super().parse_body(request)


api = NinjaAPI(
    title="Wizard status API",
    version="1.0.0",
    description="Onboarding data, wizard status and realtime tickets.",
    urls_namespace="api-v1",
    docs_url="/docs",
    auth=[BearerTokenAuth(), SessionCookieAuth()],
    parser=JsonBodyParser(),
)
api.add_router("/", onboarding_router)
api.add_router("/realtime", realtime_router)


def _validation_error(field: str, message: str) -> dict:
    # The same shape Ninja gives its own validation errors.
    return {"detail": [{"type": "value_error", "loc": ["body", "payload", field], "msg": message}]}


@api.exception_handler(InvalidInput)
def on_invalid_input(request: HttpRequest, error: InvalidInput) -> HttpResponse:
    return api.create_response(request, _validation_error(error.field, error.message), status=422)


@api.exception_handler(PasswordRejected)
def on_password_rejected(request: HttpRequest, error: PasswordRejected) -> HttpResponse:
    body = _validation_error("password", " ".join(error.messages))
    return api.create_response(request, body, status=422)


@api.exception_handler(UsernameTaken)
def on_username_taken(request: HttpRequest, error: UsernameTaken) -> HttpResponse:
    return api.create_response(request, {"detail": "This username is already taken."}, status=409)


@api.exception_handler(ChannelTaken)
def on_channel_taken(request: HttpRequest, error: ChannelTaken) -> HttpResponse:
    body = {"detail": "This account is already connected to another user."}
    return api.create_response(request, body, status=409)


@api.exception_handler(NotFound)
def on_not_found(request: HttpRequest, error: NotFound) -> HttpResponse:
    return api.create_response(request, {"detail": "Not found."}, status=404)


@api.exception_handler(WizardIncomplete)
def on_wizard_incomplete(request: HttpRequest, error: WizardIncomplete) -> HttpResponse:
    body = {
        "success": False,
        "code": "wizard_incomplete",
        "detail": "Complete every requirement first.",
        "missing_fields": error.missing_fields,
    }
    return api.create_response(request, body, status=400)


@api.exception_handler(InvalidToken)
@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, error: Exception) -> HttpResponse:
    response = api.create_response(request, {"detail": "Unauthorized"}, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(RequestDataTooBig)
def on_body_too_big(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
    return api.create_response(request, {"detail": "Request body is too large."}, status=413)

"""The NinjaAPI: routers of every app, default auth, and domain errors mapped to answers once."""

import logging
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, Throttled
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser
from pydantic import BaseModel

from onboarding.api import router as onboarding_router
from onboarding.auth import BearerTokenAuth, SessionCookieAuth
from onboarding.exceptions import (
    ChannelLimitReached,
    ChannelTaken,
    InvalidInput,
    InvalidToken,
    NotFound,
    PasswordRejected,
    RateLimited,
    Unavailable,
    UsernameTaken,
    WizardIncomplete,
    WrongPassword,
)
from onboarding.schemas import ErrorOut, ValidationErrorOut
from realtime.api import router as realtime_router

logger = logging.getLogger(__name__)


_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class JsonBodyParser(Parser):
    """Read a body only when it is declared as JSON (Ninja answers 400 otherwise).

    An HTML form on another site can post JSON-looking text as text/plain without a CORS
    preflight, and /auth/login and /auth/register take no CSRF token: it could log a browser
    into the attacker's account. A JSON Content-Type cannot be sent cross-site unpreflighted.
    """

    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if (
            request.method == "POST"
            and content_type in _FORM_TYPES
            and not request.POST
            and not request.FILES
        ):
            return None  # an empty form is no body (what a bare `POST` sends)
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise ValueError("Content-Type must be application/json.")
        return super().parse_body(request)


_REF_TEMPLATE = "#/components/schemas/{model}"
_UNSAFE_METHODS = {"post", "put", "patch", "delete"}


def _component(document: OpenAPISchema, model: type[BaseModel]) -> dict:
    """A $ref to `model`, added to the document's components (with what it nests)."""
    definition = model.model_json_schema(ref_template=_REF_TEMPLATE)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, nested in definition.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components.setdefault(model.__name__, definition)
    return {"$ref": _REF_TEMPLATE.format(model=model.__name__)}


def _json_answer(description: str, ref: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


class WizardStatusAPI(NinjaAPI):
    """The NinjaAPI whose OpenAPI document also lists the answers of the API-wide machinery.

    Authentication, the body parser and the error handlers below answer 400, 401, 403, 413,
    422 and 503 for any operation they apply to; Ninja only documents what each operation
    declares, so a client reading the document would not know those answers exist.
    """

    def get_openapi_schema(self, *, path_prefix=None, path_params=None) -> OpenAPISchema:
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        error = _component(document, ErrorOut)
        invalid = _component(document, ValidationErrorOut)
        for operations in document["paths"].values():
            for method, operation in operations.items():
                authenticated = bool(operation.get("security"))
                unsafe = method in _UNSAFE_METHODS
                answers = {}
                if "requestBody" in operation:
                    answers[400] = _json_answer("Malformed JSON or not a JSON body", error)
                if authenticated:
                    unauthorized = _json_answer("No valid Bearer token or session", error)
                    unauthorized["headers"] = {
                        "WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}
                    }
                    answers[401] = unauthorized
                if authenticated and unsafe:
                    answers[403] = _json_answer("Session cookie without a valid CSRF token", error)
                if "requestBody" in operation or (authenticated and unsafe):
                    answers[413] = _json_answer("Request body too large", error)
                if "requestBody" in operation or operation.get("parameters"):
                    answers[422] = _json_answer("Validation error", invalid)
                unavailable = _json_answer("The database is briefly unavailable", error)
                unavailable["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
                answers[503] = unavailable
                responses = operation["responses"]
                for status, answer in answers.items():
                    if status not in responses and str(status) not in responses:
                        responses[status] = answer
        return document


api = WizardStatusAPI(
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
    body = _validation_error(error.field, " ".join(error.messages))
    return api.create_response(request, body, status=422)


@api.exception_handler(UsernameTaken)
def on_username_taken(request: HttpRequest, error: UsernameTaken) -> HttpResponse:
    return api.create_response(request, {"detail": "This username is already taken."}, status=409)


@api.exception_handler(ChannelTaken)
def on_channel_taken(request: HttpRequest, error: ChannelTaken) -> HttpResponse:
    body = {"code": "channel_taken", "detail": "This account is already connected to another user."}
    return api.create_response(request, body, status=409)


@api.exception_handler(ChannelLimitReached)
def on_channel_limit(request: HttpRequest, error: ChannelLimitReached) -> HttpResponse:
    body = {
        "code": "channel_limit",
        "detail": f"At most {settings.CHANNELS_PER_USER_LIMIT} channels can be connected; "
        "disconnect one first.",
    }
    return api.create_response(request, body, status=409)


@api.exception_handler(Throttled)
def on_throttled(request: HttpRequest, error: Throttled) -> HttpResponse:
    """Over a quota (onboarding/quotas.py); Ninja adds the Retry-After header."""
    retry_after = math.ceil(error.wait or 1)
    body = {"detail": "Too many requests; try again later.", "retry_after": retry_after}
    return api.create_response(request, body, status=429)


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


@api.exception_handler(WrongPassword)
def on_wrong_password(request: HttpRequest, error: WrongPassword) -> HttpResponse:
    body = {"code": "wrong_password", "detail": "The current password is not correct."}
    return api.create_response(request, body, status=400)


@api.exception_handler(RateLimited)
def on_rate_limited(request: HttpRequest, error: RateLimited) -> HttpResponse:
    body = {"detail": error.detail, "retry_after": error.retry_after}
    response = api.create_response(request, body, status=429)
    response["Retry-After"] = str(error.retry_after)
    return response


@api.exception_handler(Unavailable)
def on_unavailable(request: HttpRequest, error: Unavailable) -> HttpResponse:
    response = api.create_response(request, {"detail": error.detail}, status=503)
    response["Retry-After"] = str(error.retry_after)
    return response


@api.exception_handler(InterfaceError)
@api.exception_handler(OperationalError)
def on_database_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    """The database is restarting, unreachable or (SQLite) busy past its wait: retry soon."""
    logger.warning("Database unavailable for %s %s", request.method, request.path, exc_info=True)
    body = {"detail": "The service is briefly unavailable; retry shortly."}
    response = api.create_response(request, body, status=503)
    response["Retry-After"] = "1"
    return response

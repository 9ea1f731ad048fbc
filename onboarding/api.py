"""Thin Ninja operations: parse, call one service or selector, shape the answer."""

from typing import Annotated

from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.http import HttpRequest
from django.middleware.csrf import get_token
from ninja import Path, Query, Router, Status

from onboarding import selectors, services, sign_ins
from onboarding.exceptions import InvalidToken
from onboarding.lockout import client_address
from onboarding.models import BusinessType
from onboarding.quotas import Quota, per_user
from onboarding.schemas import (
    BusinessTypeOut,
    ChannelConnectIn,
    ChannelOut,
    ChannelRefusedOut,
    CredentialsIn,
    ErrorOut,
    HistoryPageOut,
    LoginOut,
    LogoutIn,
    ManualPromptIn,
    ManualPromptOut,
    PasswordChangeIn,
    ProfileOut,
    ProfilePatchIn,
    RefreshIn,
    RegisterIn,
    TokenPairOut,
    TooManyRequestsOut,
    UserOut,
    ValidationErrorOut,
    WizardCompleteOut,
    WizardIncompleteOut,
    WizardStatusOut,
    WrongPasswordOut,
)
from onboarding.tokens import TokenPair

router = Router()

# Every onboarding write of one user counts toward one quota; registrations per address.
WRITES = Quota("writes", "RATE_LIMIT_WRITES", per_user)
REGISTRATIONS = Quota(
    "register", "RATE_LIMIT_REGISTER", lambda request: client_address(request.META)
)
_TOO_MANY = {429: TooManyRequestsOut}

_INVALID_CREDENTIALS = "Invalid username or password."
_MAX_ID = 2**63 - 1  # bigint primary keys


def _token_answer(pair: TokenPair) -> dict:
    return {"access": pair.access, "refresh": pair.refresh, "expires_in": pair.expires_in}


@router.post(
    "/auth/register",
    auth=None,
    response={201: UserOut, 409: ErrorOut, 503: ErrorOut, **_TOO_MANY},
    throttle=REGISTRATIONS,
    tags=["auth"],
)
def register(request: HttpRequest, payload: RegisterIn):
    user = services.user_register(
        username=payload.username, password=payload.password, email=payload.email
    )
    return Status(201, user)


_SIGN_IN_ANSWERS = {401: ErrorOut, 429: TooManyRequestsOut, 503: ErrorOut}


@router.post(
    "/auth/token", auth=None, response={200: TokenPairOut, **_SIGN_IN_ANSWERS}, tags=["auth"]
)
def token_obtain(request: HttpRequest, payload: CredentialsIn):
    """A new sign-in: an access token and the first refresh token of its chain."""
    user = authenticate(request, username=payload.username, password=payload.password)
    if user is None:
        return Status(401, {"detail": _INVALID_CREDENTIALS})
    return Status(200, _token_answer(sign_ins.sign_in_start(user=user)))


@router.post(
    "/auth/token/refresh",
    auth=None,
    response={200: TokenPairOut, 401: ErrorOut, **_TOO_MANY},
    tags=["auth"],
)
def token_refresh(request: HttpRequest, payload: RefreshIn):
    """A new pair for the newest refresh token; a spent one ends its whole sign-in."""
    try:
        pair = sign_ins.sign_in_refresh(refresh_token=payload.refresh)
    except InvalidToken:
        return Status(401, {"detail": "Invalid or expired refresh token."})
    return Status(200, _token_answer(pair))


@router.post("/auth/login", auth=None, response={200: LoginOut, **_SIGN_IN_ANSWERS}, tags=["auth"])
def session_login(request: HttpRequest, payload: CredentialsIn):
    user = authenticate(request, username=payload.username, password=payload.password)
    if user is None:
        return Status(401, {"detail": _INVALID_CREDENTIALS})
    login(request, user)
    get_token(request)  # rotates and sets the CSRF cookie for the new session
    return Status(200, user)


@router.post("/auth/logout", response={204: None}, tags=["auth"])
def session_logout(request: HttpRequest, payload: LogoutIn | None = None):
    """End the session, the sign-in of the access token that calls, and the named refresh
    token's sign-in."""
    claims = getattr(request, "token_claims", None)
    sign_ins.sign_out(
        user_id=request.auth.pk,
        sign_in_id=claims.sign_in_id if claims is not None else None,
        refresh_token=payload.refresh if payload is not None else None,
    )
    logout(request)
    return Status(204, None)


@router.post(
    "/auth/password",
    response={
        200: TokenPairOut,
        400: WrongPasswordOut,
        422: ValidationErrorOut,
        429: TooManyRequestsOut,
        503: ErrorOut,
    },
    tags=["auth"],
)
def password_change(request: HttpRequest, payload: PasswordChangeIn):
    """Change the password: every token, session and ticket issued before is void, open
    sockets close (4401). Answers a new pair; a session that made the call is renewed."""
    changed = sign_ins.user_password_change(
        user_id=request.auth.pk,
        current_password=payload.current_password,
        new_password=payload.new_password,
        client_address=client_address(request.META),
    )
    if getattr(request, "token_claims", None) is None:
        update_session_auth_hash(request, changed.user)
    return Status(200, _token_answer(changed.tokens))


@router.get("/accounts/me", response=ProfileOut, tags=["accounts"])
def profile_get(request: HttpRequest):
    return selectors.account_profile_get(user=request.auth).as_answer()


@router.patch(
    "/accounts/me", response={200: ProfileOut, **_TOO_MANY}, throttle=WRITES, tags=["accounts"]
)
def profile_patch(request: HttpRequest, payload: ProfilePatchIn):
    profile = services.profile_update(user_id=request.auth.pk, **payload.dict(exclude_unset=True))
    return selectors.account_profile(user=request.auth, profile=profile).as_answer()


@router.get("/accounts/business-types", response=list[BusinessTypeOut], tags=["accounts"])
def business_types(request: HttpRequest):
    return [{"value": value, "label": label} for value, label in BusinessType.choices]


@router.get("/accounts/wizard-status", response=WizardStatusOut, tags=["wizard"])
def wizard_status(request: HttpRequest):
    return selectors.wizard_status_get(user_id=request.auth.pk).as_message()


@router.get("/accounts/wizard-status/history", response=HistoryPageOut, tags=["wizard"])
def wizard_status_history(
    request: HttpRequest,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    # Not `int | None`: a query string cannot say null, and the `anyOf` it documents misleads
    # generated clients (and fuzzers) into sending values it cannot carry.
    before_version: Annotated[int, Query(ge=1, le=_MAX_ID)] = None,  # noqa: RUF013
):
    """Every distinct status the wizard went through, newest first."""
    page = selectors.status_history_page(
        user_id=request.auth.pk, limit=limit, before_version=before_version
    )
    return {"items": page.items, "next_before_version": page.next_before_version}


@router.patch(
    "/accounts/wizard-complete",
    response={200: WizardCompleteOut, 400: WizardIncompleteOut, **_TOO_MANY},
    throttle=WRITES,
    tags=["wizard"],
)
def wizard_complete(request: HttpRequest):
    completion = services.wizard_complete(user_id=request.auth.pk)
    return Status(
        200, {"completed_at": completion.completed_at, "status": completion.status.as_message()}
    )


@router.get("/ai-prompts/manual", response=ManualPromptOut, tags=["ai-prompts"])
def manual_prompt_get(request: HttpRequest):
    prompt = selectors.manual_prompt_get(user_id=request.auth.pk)
    if prompt is None:
        return {"content": "", "updated_at": None}
    return prompt


@router.put(
    "/ai-prompts/manual",
    response={200: ManualPromptOut, **_TOO_MANY},
    throttle=WRITES,
    tags=["ai-prompts"],
)
def manual_prompt_put(request: HttpRequest, payload: ManualPromptIn):
    return services.manual_prompt_save(user_id=request.auth.pk, content=payload.content)


@router.delete(
    "/ai-prompts/manual", response={204: None, **_TOO_MANY}, throttle=WRITES, tags=["ai-prompts"]
)
def manual_prompt_delete(request: HttpRequest):
    services.manual_prompt_delete(user_id=request.auth.pk)
    return Status(204, None)


@router.get("/channels", response=list[ChannelOut], tags=["channels"])
def channel_list(request: HttpRequest):
    return selectors.channel_list(user_id=request.auth.pk)


@router.post(
    "/channels",
    response={200: ChannelOut, 201: ChannelOut, 409: ChannelRefusedOut, **_TOO_MANY},
    throttle=WRITES,
    tags=["channels"],
)
def channel_connect(request: HttpRequest, payload: ChannelConnectIn):
    connection = services.channel_connect(
        user_id=request.auth.pk,
        platform=payload.platform,
        external_id=payload.external_id,
        name=payload.name,
    )
    return Status(201 if connection.created else 200, connection.channel)


@router.delete(
    "/channels/{channel_id}",
    response={204: None, 404: ErrorOut, **_TOO_MANY},
    throttle=WRITES,
    tags=["channels"],
)
def channel_disconnect(request: HttpRequest, channel_id: Annotated[int, Path(ge=1, le=_MAX_ID)]):
    services.channel_disconnect(user_id=request.auth.pk, channel_id=channel_id)
    return Status(204, None)

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator, ConfigDict, Field, create_model

from onboarding.models import MANUAL_PROMPT_MAX_LENGTH, BusinessType, Platform
from onboarding.status import PLATFORM_DETAILS, REQUIREMENTS
from onboarding.validators import has_forbidden_control_characters


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL; reject it here so no query ever sees one.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed.")
    return value


def _no_lone_surrogate(value: str) -> str:
    # JSON "\ud800" decodes to a lone surrogate, which has no UTF-8 form: the database
    # and the password hasher would fail on it with a 500.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Unpaired surrogate characters are not allowed.") from None
    return value


def _single_line(value: str) -> str:
    if has_forbidden_control_characters(value):
        raise ValueError("Control characters are not allowed.")
    return value


Text = Annotated[str, AfterValidator(_no_nul), AfterValidator(_no_lone_surrogate)]
Line = Annotated[str, AfterValidator(_single_line), AfterValidator(_no_lone_surrogate)]


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(StrictIn):
    username: Annotated[Line, Field(min_length=1, max_length=150)]
    password: Annotated[Text, Field(min_length=1, max_length=4096)]
    email: Annotated[Line, Field(max_length=254)] = ""


class UserOut(Schema):
    id: int
    username: str
    email: str


class CredentialsIn(StrictIn):
    username: Annotated[Line, Field(max_length=150)]
    password: Annotated[Text, Field(max_length=4096)]


class RefreshIn(StrictIn):
    refresh: Annotated[Line, Field(max_length=4096)]


class LogoutIn(StrictIn):
    refresh: Annotated[Text, Field(max_length=4096)] | None = None


class PasswordChangeIn(StrictIn):
    current_password: Annotated[Text, Field(max_length=4096)]
    new_password: Annotated[Text, Field(min_length=1, max_length=4096)]


class WrongPasswordOut(Schema):
    code: Literal["wrong_password"] = "wrong_password"
    detail: str


class TooManyRequestsOut(Schema):
    detail: str
    retry_after: int


class TokenPairOut(Schema):
    access: str
    refresh: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class LoginOut(Schema):
    id: int
    username: str


class ProfileOut(Schema):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    phone_number: str
    business_type: str
    wizard_completed_at: datetime | None


class ProfilePatchIn(StrictIn):
    first_name: Annotated[Line, Field(max_length=150)] | None = None
    last_name: Annotated[Line, Field(max_length=150)] | None = None
    phone_number: Annotated[Line, Field(max_length=64)] | None = None
    business_type: BusinessType | Literal[""] | None = None


class BusinessTypeOut(Schema):
    value: str
    label: str


class ManualPromptIn(StrictIn):
    content: Annotated[Text, Field(max_length=MANUAL_PROMPT_MAX_LENGTH)]


class ManualPromptOut(Schema):
    content: str
    updated_at: datetime | None


class ChannelConnectIn(StrictIn):
    platform: Platform
    external_id: Annotated[Line, Field(min_length=1, max_length=255)]
    name: Annotated[Line, Field(max_length=255)] | None = None


class ChannelOut(Schema):
    id: int
    platform: str
    external_id: str
    name: str
    connected_at: datetime


Requirement = Literal[REQUIREMENTS]  # type: ignore[valid-type]  # the canonical order


# One boolean per key, from the status's own table, so the OpenAPI document names every key.
StatusDetailsOut = create_model(
    "StatusDetailsOut",
    __base__=Schema,
    __doc__="Each requirement met or not, and which platforms have an active channel.",
    **{name: (bool, ...) for name in (*REQUIREMENTS, *PLATFORM_DETAILS)},
)


class StatusProgressOut(Schema):
    completed: int = Field(ge=0, description="Requirements met")
    total: int = Field(description="Requirements in all")
    percent: int = Field(ge=0, le=100, description="round(100 * completed / total)")


class WizardStatusOut(Schema):
    model_config = ConfigDict(extra="allow")

    type: Literal["wizard_status"]
    wizard_complete: bool
    can_complete: bool
    missing_fields: list[Requirement] = Field(description="Unmet requirements, canonical order")
    details: StatusDetailsOut
    progress: StatusProgressOut
    version: int = Field(description="Per user, strictly increasing over committed changes")
    timestamp: str = Field(description="When computed: ISO 8601 UTC with milliseconds and Z")


class WizardCompleteOut(Schema):
    success: Literal[True] = True
    wizard_complete: Literal[True] = True
    completed_at: datetime
    status: WizardStatusOut


class WizardIncompleteOut(Schema):
    success: Literal[False] = False
    code: Literal["wizard_incomplete"] = "wizard_incomplete"
    detail: str
    missing_fields: list[Requirement]


class ErrorOut(Schema):
    detail: Any


class ChannelRefusedOut(Schema):
    """409: the account is another user's (`channel_taken`), or `channel_limit` is reached."""

    code: Literal["channel_taken", "channel_limit"]
    detail: str


class ValidationErrorItemOut(Schema):
    model_config = ConfigDict(extra="allow")  # Ninja adds `ctx` to some errors

    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(Schema):
    """Ninja's 422 shape, which `config.api` also gives the services' validation errors."""

    detail: list[ValidationErrorItemOut]


class ActorOut(Schema):
    kind: Literal["user", "admin", "system"]
    id: int | None


class HistoryEntryOut(Schema):
    version: int
    status: dict[str, Any]
    changed: list[str]
    causes: list[str]
    actors: list[ActorOut]
    occurred_at: datetime
    recorded_at: datetime


class HistoryPageOut(Schema):
    items: list[HistoryEntryOut]
    next_before_version: int | None

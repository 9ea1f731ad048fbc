"""The wizard-status socket's protocol: its close codes, and every frame it sends as a
schema (contract sections 2 and 6).

`tests/realtime/test_frames.py` drives the socket into sending each kind and checks every
frame it receives against `SERVER_FRAME`; the browser client's `wizard-status.d.ts` types
the same frames. The status itself is the REST API's schema: one shape for both.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from onboarding.schemas import WizardStatusOut

CLOSE_UNAUTHENTICATED = 4401  # missing, invalid, expired, reused or revoked credentials
CLOSE_FORBIDDEN = 4403  # an inactive or deactivated account
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_MESSAGE_TOO_BIG = 1009
# A socket let go because its client does not read: the code cannot reach such a client,
# which sees the connection end; it is what `disconnect` is told.
CLOSE_NOT_READING = 1008

_TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"

ErrorCode = Literal["invalid_json", "invalid_message", "unknown_type", "rate_limited"]


class PongFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["pong"]
    timestamp: str = Field(pattern=_TIMESTAMP)


class ErrorFrame(BaseModel):
    """A bad client frame was answered; the socket stays open."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["error"]
    code: ErrorCode
    detail: str = Field(min_length=1)
    retry_after: int | None = Field(default=None, ge=1, description="With rate_limited: seconds")


ServerFrame = Annotated[WizardStatusOut | PongFrame | ErrorFrame, Field(discriminator="type")]
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)

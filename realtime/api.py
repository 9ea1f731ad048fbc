from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema, Status

from onboarding.quotas import Quota, per_user
from onboarding.schemas import TooManyRequestsOut
from realtime.tickets import ticket_issue

router = Router(tags=["realtime"])

TICKETS = Quota("tickets", "RATE_LIMIT_TICKETS", per_user)


class TicketOut(Schema):
    ticket: str
    expires_in: int


@router.post("/ticket", response={201: TicketOut, 429: TooManyRequestsOut}, throttle=TICKETS)
def ticket_create(request: HttpRequest):
    """A one-time ticket for `/ws/wizard-status/?ticket=...`, valid 60 s."""
    user = request.auth
    ticket = ticket_issue(user_id=user.pk, credentials_generation=user.credentials_generation)
    return Status(201, {"ticket": ticket, "expires_in": settings.WEBSOCKET_TICKET_TTL_SECONDS})

"""JWT access and refresh tokens (HS256, PyJWT).

Checking a token needs no database hit; callers load the user and check `is_active`.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import jwt
from django.conf import settings
from django.utils import timezone

from onboarding.exceptions import InvalidToken

TokenType = Literal["access", "refresh"]
_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "type"]
_MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


def _encode(user_id: int, token_type: TokenType, lifetime: timedelta) -> str:
    now = timezone.now()
    claims = {
        "sub": str(user_id),
        "type": token_type,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm=_ALGORITHM)


def token_pair_issue(*, user_id: int) -> TokenPair:
    access_lifetime = settings.JWT_ACCESS_TOKEN_LIFETIME
    return TokenPair(
        access=_encode(user_id, "access", access_lifetime),
        refresh=_encode(user_id, "refresh", settings.JWT_REFRESH_TOKEN_LIFETIME),
        expires_in=int(access_lifetime.total_seconds()),
    )


def token_user_id(token: str, *, expected_type: TokenType) -> int:
    """The user id a valid, unexpired token of the expected type names."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken("Token is missing or too long.")
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SIGNING_KEY,
            algorithms=[_ALGORITHM],
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    if claims.get("type") != expected_type:
        raise InvalidToken(f"Expected a {expected_type} token.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.isdigit():
        raise InvalidToken("Malformed subject.")
    return int(subject)

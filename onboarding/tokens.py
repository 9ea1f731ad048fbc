"""JWT access and refresh tokens (HS256, PyJWT).

Every token names its sign-in (`sid`) and the user's credentials generation (`gen`) it was
issued under. Decoding checks the signature and the claims only; whether the sign-in is
still live and the generation current is the database's answer (`onboarding.selectors`).
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import jwt
from django.conf import settings

from onboarding.exceptions import InvalidToken

TokenType = Literal["access", "refresh"]
_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "type", "jti", "sid", "gen"]
_MAX_TOKEN_LENGTH = 4096
_MAX_JTI_LENGTH = 64
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    sign_in_id: int
    generation: int
    jti: str


def new_jti() -> str:
    return secrets.token_hex(16)


def _encode(
    *,
    token_type: TokenType,
    user_id: int,
    sign_in_id: int,
    generation: int,
    jti: str,
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    claims = {
        "sub": str(user_id),
        "type": token_type,
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti,
        "sid": sign_in_id,
        "gen": generation,
    }
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm=_ALGORITHM)


def token_pair_encode(
    *,
    user_id: int,
    sign_in_id: int,
    generation: int,
    refresh_jti: str,
    issued_at: datetime,
    sign_in_expires_at: datetime,
) -> TokenPair:
    """Both tokens of a sign-in; neither outlives the sign-in itself."""
    access_expires_at = min(issued_at + settings.JWT_ACCESS_TOKEN_LIFETIME, sign_in_expires_at)
    refresh_expires_at = min(issued_at + settings.JWT_REFRESH_TOKEN_LIFETIME, sign_in_expires_at)
    common = {
        "user_id": user_id,
        "sign_in_id": sign_in_id,
        "generation": generation,
        "issued_at": issued_at,
    }
    return TokenPair(
        access=_encode(token_type="access", jti=new_jti(), expires_at=access_expires_at, **common),
        refresh=_encode(
            token_type="refresh", jti=refresh_jti, expires_at=refresh_expires_at, **common
        ),
        expires_in=max(int((access_expires_at - issued_at).total_seconds()), 0),
    )


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= _MAX_BIGINT


def _bigint(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_BIGINT


def token_claims(token: str, *, expected_type: TokenType) -> TokenClaims:
    """The claims of a well-signed, unexpired token of the expected type; else InvalidToken."""
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
    if claims["type"] != expected_type:
        raise InvalidToken(f"Expected a {expected_type} token.")
    subject, jti = claims["sub"], claims["jti"]
    if not isinstance(subject, str) or not _is_id(subject):
        raise InvalidToken("Malformed subject.")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI_LENGTH:
        raise InvalidToken("Malformed jti.")
    if not _bigint(claims["sid"]) or not _bigint(claims["gen"]):
        raise InvalidToken("Malformed sign-in claims.")
    return TokenClaims(
        user_id=int(subject), sign_in_id=claims["sid"], generation=claims["gen"], jti=jti
    )

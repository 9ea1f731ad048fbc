"""Sign-ins and their revocation (contract section 6).

A sign-in is one `auth/token` call and every refresh token descended from it. Each refresh
spends the token presented and issues the next one; a spent token presented again means two
holders, one of them a thief, so the whole sign-in ends (RFC 9700 §4.14.2). A sign-in ends
for good `JWT_SIGN_IN_LIFETIME` after it began, however often it is refreshed.

Revoking everything a user holds (a password change, "end all sessions", deactivation) moves
the user's credentials generation on: every token, ticket and session carries the one it was
issued under, so all of them stop working in the same commit, and an outbox row closes the
sockets already open (the relay pushes it; the reconciler catches up if that push is lost).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from onboarding import lockout
from onboarding.exceptions import (
    InvalidToken,
    NotFound,
    PasswordRejected,
    WrongPassword,
)
from onboarding.models import OnboardingProfile, SignIn, SignInEnd, User
from onboarding.quotas import quota_spend
from onboarding.tokens import TokenPair, new_jti, token_claims, token_pair_encode
from outbox.models import Actor, Topic
from outbox.services import outbox_enqueue

logger = logging.getLogger(__name__)

# An ended sign-in is kept this long for the admin's view, then deleted with the next
# sign-in of the same user.
ENDED_SIGN_IN_RETENTION = timedelta(days=7)


def sign_in_start(*, user: User) -> TokenPair:
    """A new sign-in for a user who has just proved their password.

    `user` is as `authenticate` read it: its credentials generation was read with the
    password hash it checked, so a revocation that commits meanwhile voids these tokens.
    """
    now = timezone.now()
    sign_in = SignIn.objects.create(
        user_id=user.pk,
        refresh_jti=new_jti(),
        created_at=now,
        expires_at=now + settings.JWT_SIGN_IN_LIFETIME,
    )
    _forget_old_sign_ins(user_id=user.pk, now=now)
    return _token_pair(sign_in, generation=user.credentials_generation, now=now)


def _token_pair(sign_in: SignIn, *, generation: int, now: datetime) -> TokenPair:
    return token_pair_encode(
        user_id=sign_in.user_id,
        sign_in_id=sign_in.pk,
        generation=generation,
        refresh_jti=sign_in.refresh_jti,
        issued_at=now,
        sign_in_expires_at=sign_in.expires_at,
    )


def _forget_old_sign_ins(*, user_id: int, now: datetime) -> None:
    """Each user's ended and expired sign-ins go with their next sign-in: no sweep needed."""
    cutoff = now - ENDED_SIGN_IN_RETENTION
    old = Q(expires_at__lt=cutoff) | Q(ended_at__lt=cutoff)
    SignIn.objects.filter(old, user_id=user_id).delete()


def sign_in_refresh(*, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair; a spent one presented again ends the sign-in.

    The sign-in's row lock orders concurrent refreshes of one token: the first rotates, the
    second finds the token spent and ends the sign-in, which voids the first one's pair too.
    """
    claims = token_claims(refresh_token, expected_type="refresh")
    quota_spend("refresh", str(claims.sign_in_id), "RATE_LIMIT_REFRESH")
    now = timezone.now()
    pair: TokenPair | None = None
    with transaction.atomic():
        sign_in = (
            SignIn.objects.select_for_update()
            .filter(pk=claims.sign_in_id, user_id=claims.user_id)
            .first()
        )
        if sign_in is None or sign_in.ended_at is not None or sign_in.expires_at <= now:
            pass
        elif sign_in.refresh_jti != claims.jti:
            logger.warning(
                "User %s presented a spent refresh token; sign-in %s ended",
                claims.user_id,
                sign_in.pk,
            )
            SignIn.objects.filter(pk=sign_in.pk).end(SignInEnd.REFRESH_REUSED)
        elif User.objects.filter(
            pk=claims.user_id, is_active=True, credentials_generation=claims.generation
        ).exists():
            sign_in.refresh_jti = new_jti()
            sign_in.refreshed_at = now
            sign_in.refresh_count = F("refresh_count") + 1
            sign_in.save(update_fields=["refresh_jti", "refreshed_at", "refresh_count"])
            pair = _token_pair(sign_in, generation=claims.generation, now=now)
    # Outside the transaction: ending a sign-in for reuse must commit, not roll back.
    if pair is None:
        raise InvalidToken("Refresh token is invalid, spent or revoked.")
    return pair


def sign_out(*, user_id: int, sign_in_id: int | None, refresh_token: str | None) -> int:
    """Logout: end the sign-in of the access token that called, and the named refresh token's.

    A refresh token that is malformed, expired or someone else's ends nothing (the caller
    still signs out of its own session). Returns how many sign-ins ended.
    """
    sign_in_ids = set() if sign_in_id is None else {sign_in_id}
    if refresh_token:
        try:
            claims = token_claims(refresh_token, expected_type="refresh")
        except InvalidToken:
            claims = None
        if claims is not None and claims.user_id == user_id:
            sign_in_ids.add(claims.sign_in_id)
    if not sign_in_ids:
        return 0
    return SignIn.objects.filter(pk__in=sign_in_ids, user_id=user_id).end(SignInEnd.LOGOUT)


def sign_in_end(*, sign_in_ids: list[int], reason: SignInEnd = SignInEnd.REVOKED) -> int:
    """End chosen sign-ins (the admin's action); their tokens stop working at once."""
    return SignIn.objects.filter(pk__in=sign_in_ids).end(reason)


def credentials_void(user: User, *, reason: SignInEnd) -> None:
    """Void everything `user` holds: the caller has the row locked and saves the generation.

    Must run inside the transaction that locked `user`.
    """
    user.credentials_generation += 1
    SignIn.objects.filter(user_id=user.pk).end(reason)


def _void_and_close_sockets(user: User, *, reason: SignInEnd, actor: Actor) -> None:
    credentials_void(user, reason=reason)
    # Not a change of onboarding data: the row carries the version as it is.
    version = (
        OnboardingProfile.objects.filter(user_id=user.pk).values_list("version", flat=True).first()
    )
    outbox_enqueue(
        user_id=user.pk,
        topic=Topic.CREDENTIALS_REVOKED,
        version=version or 0,
        payload={"reason": reason.value, "generation": user.credentials_generation},
        actor=actor,
    )


def _lock_user(user_id: int) -> User:
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    tokens: TokenPair  # of a new sign-in, under the new generation
    user: User  # as written: a session that made the change is renewed from it


def user_password_change(
    *, user_id: int, current_password: str, new_password: str, client_address: str
) -> PasswordChanged:
    """The user changes their own password: every credential before it is void.

    The current password is checked under the sign-in attempt limits, like a login.
    """
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    attempt = lockout.attempt_begin(subject=lockout.user_subject(user.pk), address=client_address)
    with attempt.hashing():
        right = user.check_password(current_password)
    if not right:
        raise WrongPassword()
    attempt.succeeded()
    try:
        password_validation.validate_password(new_password, user=user)
    except ValidationError as error:
        raise PasswordRejected(error.messages, field="new_password") from None
    with lockout.password_hashing():
        hashed = make_password(new_password)  # ~0.5 s: before any lock is taken
    with transaction.atomic():
        user = _lock_user(user_id)
        user.password = hashed
        _void_and_close_sockets(user, reason=SignInEnd.PASSWORD_CHANGED, actor=Actor.user(user_id))
        user.save(update_fields=["password", "credentials_generation"])
        tokens = sign_in_start(user=user)
    password_validation.password_changed(new_password, user=user)
    return PasswordChanged(tokens=tokens, user=user)


def user_password_set(*, user_id: int, password: str | None, actor: Actor) -> User:
    """An administrator or operator sets a password (None: no password sign-in at all).

    Validation is the caller's (the admin's form, `changepassword`). Every credential the
    user held is void afterwards.
    """
    hashed = make_password(password)  # before the lock: hashing takes ~0.5 s
    with transaction.atomic():
        user = _lock_user(user_id)
        user.password = hashed
        _void_and_close_sockets(user, reason=SignInEnd.PASSWORD_CHANGED, actor=actor)
        user.save(update_fields=["password", "credentials_generation"])
    if password is not None:
        password_validation.password_changed(password, user=user)
    return user


def user_sessions_end(*, user_id: int, actor: Actor) -> User:
    """ "End all sessions": every token, session and ticket of the user is void; sockets close."""
    with transaction.atomic():
        user = _lock_user(user_id)
        _void_and_close_sockets(user, reason=SignInEnd.SESSIONS_ENDED, actor=actor)
        user.save(update_fields=["credentials_generation"])
    return user

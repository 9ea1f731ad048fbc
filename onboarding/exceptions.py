"""Domain errors raised by services; `config/api.py` maps each to an HTTP answer once."""

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every error a caller can cause and correct."""


class InvalidInput(DomainError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PasswordRejected(DomainError):
    def __init__(self, messages: Sequence[str], *, field: str = "password") -> None:
        super().__init__(" ".join(messages))
        self.messages = list(messages)
        self.field = field


class UsernameTaken(DomainError):
    pass


class ChannelTaken(DomainError):
    """The external account is connected to another user."""


class ChannelLimitReached(DomainError):
    """The user already has CHANNELS_PER_USER_LIMIT active channels."""


class NotFound(DomainError):
    pass


class WizardIncomplete(DomainError):
    def __init__(self, missing_fields: Sequence[str]) -> None:
        super().__init__("Wizard requirements are not met: " + ", ".join(missing_fields))
        self.missing_fields = list(missing_fields)


class InvalidToken(DomainError):
    pass


class WrongPassword(DomainError):
    """The current password given to change it is not the user's."""


class RateLimited(DomainError):
    """Too many requests of some kind: answered 429 with `retry_after` seconds."""

    detail = "Too many requests; try again later."

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(self.detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """The service cannot take this request now (503); `retry_after` says when to retry."""

    detail = "Unavailable for a moment; try again shortly."
    retry_after = 5


class SignInBusy(Unavailable):
    """Every password-hashing slot of the process is taken: retry in a moment."""

    detail = "Too many passwords are being checked at once; try again in a second."
    retry_after = 1


class SignInUnavailable(Unavailable):
    """The attempt limits cannot be checked (Redis is unreachable): no password is checked."""

    detail = "Signing in is unavailable for a moment; try again shortly."

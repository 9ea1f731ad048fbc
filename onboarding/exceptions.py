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
    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = list(messages)


class UsernameTaken(DomainError):
    pass


class ChannelTaken(DomainError):
    """The external account is connected to another user."""


class NotFound(DomainError):
    pass


class WizardIncomplete(DomainError):
    def __init__(self, missing_fields: Sequence[str]) -> None:
        super().__init__("Wizard requirements are not met: " + ", ".join(missing_fields))
        self.missing_fields = list(missing_fields)


class InvalidToken(DomainError):
    pass

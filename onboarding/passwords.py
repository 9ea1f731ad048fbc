"""Password validators beside Django's own (AUTH_PASSWORD_VALIDATORS)."""

import string
from functools import cache

from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError

_AROUND_A_WORD = string.digits + string.punctuation + string.whitespace


@cache
def _common_passwords() -> frozenset[str]:
    # Django's list of 20,000 common passwords, read once per process.
    return frozenset(CommonPasswordValidator().passwords)


class NotOnlyWhitespaceValidator:
    """Eight spaces pass the length check; they are no password."""

    def validate(self, password: str, user=None) -> None:
        if password and not password.strip():
            raise ValidationError(
                "This password consists of whitespace only.", code="password_only_whitespace"
            )

    def get_help_text(self) -> str:
        return "Your password can't consist of whitespace only."


class CommonWordWithDigitsValidator:
    """A common password with digits or symbols around it is still common: "Summer2024",
    "Password1!" and "2024dragon" are the first guesses of any list-based attack."""

    def validate(self, password: str, user=None) -> None:
        lowered = password.lower().strip()
        stem = lowered.strip(_AROUND_A_WORD)
        common = _common_passwords()
        # A password common as it is, Django's own validator has refused already.
        if stem and stem != lowered and stem in common and lowered not in common:
            raise ValidationError(
                "This password is a common password with digits or symbols added.",
                code="password_common_with_digits",
            )

    def get_help_text(self) -> str:
        return "Your password can't be a common password with digits or symbols added."

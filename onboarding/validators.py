"""Normalisation of onboarding input, shared by every write path (API and admin)."""

import unicodedata

import phonenumbers
from django.conf import settings

from onboarding.exceptions import InvalidInput
from onboarding.models import MANUAL_PROMPT_MAX_LENGTH, BusinessType, Platform

NAME_MAX_LENGTH = 150
EXTERNAL_ID_MAX_LENGTH = 255
CHANNEL_NAME_MAX_LENGTH = 255
PHONE_INPUT_MAX_LENGTH = 64
_TEXT_CONTROL_ALLOWED = frozenset("\n\r\t")


def has_forbidden_control_characters(value: str, *, multiline: bool = False) -> bool:
    allowed = _TEXT_CONTROL_ALLOWED if multiline else frozenset()
    return any(unicodedata.category(char) == "Cc" and char not in allowed for char in value)


def clean_single_line(field: str, value: str | None, *, max_length: int) -> str:
    """Trimmed text; `None` clears the field."""
    if value is None:
        return ""
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(field, f"Ensure this value has at most {max_length} characters.")
    if has_forbidden_control_characters(value):
        raise InvalidInput(field, "Control characters are not allowed.")
    return value


def clean_name(field: str, value: str | None) -> str:
    return clean_single_line(field, value, max_length=NAME_MAX_LENGTH)


def normalize_phone_number(value: str | None) -> str:
    """E.164 form of a valid number, or "" to clear."""
    value = clean_single_line("phone_number", value, max_length=PHONE_INPUT_MAX_LENGTH)
    if not value:
        return ""
    try:
        parsed = phonenumbers.parse(value, settings.PHONE_NUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(
            "phone_number",
            "Enter a valid phone number in international format, e.g. +14155552671.",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def clean_business_type(value: str | None) -> str:
    if value is None or value == "":
        return ""
    if value not in BusinessType.values:
        raise InvalidInput(
            "business_type", "Unknown business type; see /api/v1/accounts/business-types."
        )
    return value


def clean_manual_prompt(value: str) -> str:
    value = value.strip()
    if len(value) > MANUAL_PROMPT_MAX_LENGTH:
        raise InvalidInput(
            "content", f"Ensure this value has at most {MANUAL_PROMPT_MAX_LENGTH} characters."
        )
    if has_forbidden_control_characters(value, multiline=True):
        raise InvalidInput(
            "content", "Control characters other than newlines and tabs are not allowed."
        )
    return value


def clean_platform(value: str) -> str:
    if value not in Platform.values:
        raise InvalidInput(
            "platform", "Platform must be one of: " + ", ".join(Platform.values) + "."
        )
    return value


def clean_external_id(value: str) -> str:
    value = clean_single_line("external_id", value, max_length=EXTERNAL_ID_MAX_LENGTH)
    if not value:
        raise InvalidInput("external_id", "This field may not be blank.")
    return value


def clean_channel_name(value: str | None) -> str:
    return clean_single_line("name", value, max_length=CHANNEL_NAME_MAX_LENGTH)

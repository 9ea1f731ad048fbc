"""The wizard status: its requirements, its type, its one computation and its comparison.

Everything that knows the shape of a status imports it from here: the selectors that read
the snapshot, the history, the relay's pushes, the consumer and the REST schemas.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from onboarding import validators
from onboarding.models import BusinessType


@dataclass(frozen=True, slots=True)
class ProfileRequirement:
    """A requirement met by a field of the onboarding profile (a column of that name)."""

    clean: Callable[[str | None], str]  # the validator: normalises a value or raises InvalidInput
    met: Callable[[str], bool]  # whether a stored value meets the requirement


def _not_blank(value: str) -> bool:
    return bool(value.strip())


# One entry per requirement a profile field meets, in canonical order: the service that writes
# the profile, the admin's form, the status snapshot and its computation all read this table.
PROFILE_REQUIREMENTS: Mapping[str, ProfileRequirement] = {
    "first_name": ProfileRequirement(
        clean=partial(validators.clean_name, "first_name"), met=_not_blank
    ),
    "last_name": ProfileRequirement(
        clean=partial(validators.clean_name, "last_name"), met=_not_blank
    ),
    "phone_number": ProfileRequirement(clean=validators.normalize_phone_number, met=bool),
    "business_type": ProfileRequirement(
        clean=validators.clean_business_type, met=lambda value: value in BusinessType.values
    ),
}
REQUIREMENTS: tuple[str, ...] = (*PROFILE_REQUIREMENTS, "manual_prompt", "channel_connected")
# Not requirements: which platforms the connected channels are on.
PLATFORM_DETAILS: tuple[str, ...] = ("instagram_connected", "telegram_connected")


@dataclass(frozen=True, slots=True)
class OnboardingSnapshot:
    """The database state the status is computed from, read in one statement."""

    user_id: int
    version: int
    profile: Mapping[str, str] = field(hash=False)  # a value per PROFILE_REQUIREMENTS key
    has_manual_prompt: bool
    instagram_connected: bool
    telegram_connected: bool
    wizard_completed_at: datetime | None
    is_active: bool = True
    credentials_generation: int = 0


@dataclass(frozen=True, slots=True)
class WizardStatus:
    user_id: int
    version: int
    wizard_complete: bool
    details: dict[str, bool] = field(hash=False)
    computed_at: datetime
    # Not part of the status object: what the relay needs to decide which sockets close.
    is_active: bool = True
    credentials_generation: int = 0

    @property
    def missing_fields(self) -> list[str]:
        return [name for name in REQUIREMENTS if not self.details[name]]

    @property
    def can_complete(self) -> bool:
        return not self.missing_fields

    @property
    def completed_count(self) -> int:
        return len(REQUIREMENTS) - len(self.missing_fields)

    def as_message(self) -> dict[str, Any]:
        """The status object of the contract, as sent and stored."""
        completed = self.completed_count
        total = len(REQUIREMENTS)
        return {
            "type": "wizard_status",
            "wizard_complete": self.wizard_complete,
            "can_complete": self.can_complete,
            "missing_fields": self.missing_fields,
            "details": dict(self.details),
            "progress": {
                "completed": completed,
                "total": total,
                "percent": round(100 * completed / total),
            },
            "version": self.version,
            "timestamp": format_timestamp(self.computed_at),
        }


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compute_wizard_status(snapshot: OnboardingSnapshot, *, computed_at: datetime) -> WizardStatus:
    channel_connected = snapshot.instagram_connected or snapshot.telegram_connected
    details = {
        **{
            name: requirement.met(snapshot.profile[name])
            for name, requirement in PROFILE_REQUIREMENTS.items()
        },
        "manual_prompt": snapshot.has_manual_prompt,
        "channel_connected": channel_connected,
        "instagram_connected": snapshot.instagram_connected,
        "telegram_connected": snapshot.telegram_connected,
    }
    return WizardStatus(
        user_id=snapshot.user_id,
        version=snapshot.version,
        wizard_complete=snapshot.wizard_completed_at is not None,
        details=details,
        computed_at=computed_at,
        is_active=snapshot.is_active,
        credentials_generation=snapshot.credentials_generation,
    )


# The status before anything was filled in: what the first history entry is compared with.
INITIAL_STATUS: Mapping[str, Any] = {
    "wizard_complete": False,
    "details": dict.fromkeys((*REQUIREMENTS, "instagram_connected", "telegram_connected"), False),
}


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The `details` keys (and `wizard_complete`) in which two status objects differ.

    Version and timestamp are not compared: two statuses that differ only there are the
    same to a person looking at the checklist.
    """
    changed = [
        key for key, value in after["details"].items() if before["details"].get(key) != value
    ]
    if before["wizard_complete"] != after["wizard_complete"]:
        changed.append("wizard_complete")
    return changed

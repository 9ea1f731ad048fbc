from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class OnboardingConfig(AppConfig):
    name = "onboarding"
    verbose_name = "Onboarding"

    def ready(self) -> None:
        from onboarding.quotas import Rule

        # A typo in a limit must stop the service at start, not answer 500 at sign-in.
        for name in (
            "LOGIN_LOCKOUT_PER_ADDRESS",
            "LOGIN_LOCKOUT_PER_ACCOUNT",
            "RATE_LIMIT_WRITES",
            "RATE_LIMIT_TICKETS",
            "RATE_LIMIT_REFRESH",
            "RATE_LIMIT_REGISTER",
            "WEBSOCKET_REFRESH_LIMIT",
            "WEBSOCKET_MESSAGE_LIMIT",
            "WEBSOCKET_CONNECT_LIMIT",
        ):
            try:
                Rule.parse(getattr(settings, name))
            except ValueError as error:
                raise ImproperlyConfigured(f"{name}: {error}") from None

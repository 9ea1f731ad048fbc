"""The admin site: Django's, with its login page under the sign-in attempt limits."""

from django import forms
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm

from onboarding.exceptions import Unavailable
from onboarding.lockout import SignInLockedOut


class LimitedAdminAuthenticationForm(AdminAuthenticationForm):
    """A locked-out attempt is a form error with the lockout's message, not a wrong password."""

    def clean(self):
        try:
            return super().clean()
        except SignInLockedOut as locked_out:
            self.request.sign_in_locked_out = locked_out
            raise forms.ValidationError(
                "Too many failed sign-in attempts. Try again in %(seconds)d seconds.",
                code="locked_out",
                params={"seconds": locked_out.retry_after},
            ) from None
        except Unavailable as unavailable:
            raise forms.ValidationError(unavailable.detail, code="unavailable") from None


class WizardAdminSite(AdminSite):
    login_form = LimitedAdminAuthenticationForm

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        locked_out = getattr(request, "sign_in_locked_out", None)
        if locked_out is not None:
            response.status_code = 429
            response["Retry-After"] = str(locked_out.retry_after)
        return response

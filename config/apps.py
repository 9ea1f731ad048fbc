from django.contrib.admin.apps import AdminConfig


class WizardAdminConfig(AdminConfig):
    # The admin site whose login page answers 429 when sign-in attempts are locked out.
    default_site = "config.admin.WizardAdminSite"

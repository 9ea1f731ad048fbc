from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView

from config.api import api
from config.health import healthz, readyz
from config.metrics import metrics
from realtime.views import wizard_status_demo

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("demo/wizard-status/", wizard_status_demo, name="wizard-status-demo"),
]

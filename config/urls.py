from django.contrib import admin
from django.urls import path

from config.api import api
from config.health import healthz, readyz
from config.metrics import metrics

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics),
]

from django.urls import path, re_path

from realtime.consumers import WizardStatusConsumer
from realtime.unknown import UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/wizard-status/", WizardStatusConsumer.as_asgi()),
    re_path(r"^", UnknownPathConsumer.as_asgi()),
]

from django.urls import path, re_path

from realtime.auth import SocketAuthMiddleware
from realtime.consumers import WizardStatusConsumer
from realtime.unknown import UnknownPathConsumer

websocket_urlpatterns = [
    # Auth inside the route: a ticket sent to any other path is not used up.
    path("ws/wizard-status/", SocketAuthMiddleware(WizardStatusConsumer.as_asgi())),
    re_path(r"^", UnknownPathConsumer.as_asgi()),
]

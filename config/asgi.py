"""ASGI entry point: HTTP goes to Django, sockets through the origin check and socket auth.

HTTP runs through Django's WSGI handler on a fixed pool of threads (a2wsgi): the whole
request, middleware and view, in one thread hop. Django's ASGI handler starts a thread per
request and hops between it and the event loop several times per request; under load those
hops made the web process spend ~20 % more CPU and delayed the sockets' pushes behind them.
The API's views are all synchronous, so nothing is lost.
"""

import logging
import os
import resource
from urllib.parse import urlsplit

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application


# Open-file limit. Every connection holds a descriptor (sockets, keep-alive, a slow client until
# its deadline in config/http_server.py) and the usual soft limit, 1,024, is far below what a web
# process holds at once. Raise it to the hard limit, which stays the supervisor's to set.
def _raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_open_file_limit()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_http_app = get_wsgi_application()

from config.metrics import forget_dead_processes  # noqa: E402

forget_dead_processes()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from config.celery import app as celery_app  # noqa: E402
from realtime.admission import HandshakeAdmission  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

logger = logging.getLogger("realtime.handshake")


def _normalise_origin(origin: str) -> str | None:
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    # An IPv6 literal keeps its brackets, so the result is a URL that parses back.
    hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{hostname}:{port}"


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """No Origin (a non-browser client), our own host, or a configured origin.

    Checked even when ALLOWED_HOSTS is "*": a cookie-authenticated socket opened from any
    other site would act with the user's session.
    """
    if origin is None:
        return True
    normalised = _normalise_origin(origin)
    if normalised is None:
        return False
    allowed = {_normalise_origin(o) for o in settings.WEBSOCKET_ALLOWED_ORIGINS}
    if normalised in allowed:
        return True
    if host:
        own = {_normalise_origin(f"{scheme}://{host}") for scheme in ("http", "https")}
        return normalised in own
    return False


class OriginCheck:
    """Refuse (403) a handshake whose Host is not in ALLOWED_HOSTS, as Django refuses HTTP,
    or whose Origin is not allowed; each refusal is one WARNING line saying what to change."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = _header(headers, b"origin")
        host = _header(headers, b"host")
        if host is not None and not host_allowed(host):
            logger.warning("Socket refused: host %s is not in ALLOWED_HOSTS", _for_log(host))
            return await WebsocketDenier()(scope, receive, send)
        if not origin_allowed(origin, host):
            logger.warning(
                "Socket refused: origin %s is not allowed; add it to WEBSOCKET_ALLOWED_ORIGINS "
                "(which defaults to CORS_ALLOWED_ORIGINS)",
                _for_log(origin),
            )
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


def host_allowed(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


def _for_log(value: str) -> str:
    """A client's header, quoted and cut short: no forged log lines, no megabyte lines."""
    return repr(value[:200])


application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_http_app, workers=settings.HTTP_THREADS),
        "websocket": HandshakeAdmission(OriginCheck(URLRouter(websocket_urlpatterns))),
    }
)

from config.heap import freeze_startup_heap, freeze_survivors_in_background  # noqa: E402

# What would otherwise be imported at the first request, then frozen with the rest of
# start-up: the URLconf with the API, its schemas and the admin, and Celery's configuration
# (the first relay nudge).
get_resolver().reverse_dict  # noqa: B018 - imported and built by the attribute
celery_app.finalize(auto=True)
freeze_startup_heap()
freeze_survivors_in_background(whole_heap_growth=settings.GC_WHOLE_HEAP_GROWTH)

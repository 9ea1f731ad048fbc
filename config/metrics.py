"""Prometheus endpoint of the web process: multiprocess counters plus database gauges."""

import hmac
import ipaddress
import os
import re
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from onboarding.lockout import client_address
from outbox.metrics import OutboxBacklogCollector

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return False
    networks = settings.METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            address = ipaddress.ip_address(client_address(request.META))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(network, strict=False) for network in networks)
    return True


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(OutboxBacklogCollector())
    if not settings.PROMETHEUS_MULTIPROC_DIR:  # this process's own counts only
        body = generate_latest(REGISTRY) + generate_latest(registry)
    else:
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def forget_dead_processes() -> None:
    """Drop the live gauges (open sockets) of processes that are gone.

    A killed web process cannot say so itself; without this its sockets would be counted
    until someone emptied the folder, which only `scripts/run` does.
    """
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if not directory:
        return
    for path in Path(directory).glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match is not None and not _process_alive(int(match[1])):
            mark_process_dead(int(match[1]), directory)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

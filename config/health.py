"""Liveness and readiness probes."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from config.redis import redis_client


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means "not ready"
        return f"error: {type(error).__name__}"
    return "ok"


def _redis_state() -> str:
    try:
        redis_client().ping()
    except Exception as error:
        return f"error: {type(error).__name__}"
    return "ok"


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    states = {"database": _database_state(), "redis": _redis_state()}
    ready = all(state == "ok" for state in states.values())
    return JsonResponse(states, status=200 if ready else 503)

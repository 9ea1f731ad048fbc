"""Flower's options: the Procfile starts it with `--conf=config/flowerconfig.py`.

Flower reads its `FLOWER_*` environment variables first, then this file, then its command
line; a name defined here replaces the variable's value, so `basic_auth` is defined only when
FLOWER_BASIC_AUTH is unset. Every page and API call then asks for one of its `user:password`
pairs (comma-separated). With DEBUG off flower refuses to start without them, the same rule
as SECRET_KEY's: the development credential cannot reach production by accident.
"""

import os
from typing import NoReturn

import tornado.web
from django.conf import settings
from flower.views.monitor import Metrics

DEVELOPMENT_BASIC_AUTH = "flower:development-only-password"


def _refuse(reason: str) -> NoReturn:
    raise SystemExit(f"flower: {reason}")  # one line on stderr, exit status 1


_credentials = os.environ.get("FLOWER_BASIC_AUTH", "")
if not _credentials:
    if not settings.DEBUG:
        _refuse("FLOWER_BASIC_AUTH (user:password) must be set when DEBUG is off.")
    basic_auth = [DEVELOPMENT_BASIC_AUTH]
else:
    for _pair in _credentials.split(","):
        _user, _colon, _password = _pair.partition(":")
        if not (_user and _password):
            _refuse("FLOWER_BASIC_AUTH must be user:password pairs, separated by commas.")
        if not settings.DEBUG and _pair == DEVELOPMENT_BASIC_AUTH:
            _refuse("FLOWER_BASIC_AUTH must not be the development credential when DEBUG is off.")

# Flower leaves /metrics open even with basic auth (its documentation lists it as exempt):
# worker host names, task names and counts, for anyone who reaches the port, a DNS-rebinding
# page included. Prometheus sends the same credentials (`basic_auth` in its scrape config).
# /healthcheck (it answers "OK") and flower's static files stay open.
Metrics.get = tornado.web.authenticated(Metrics.get)

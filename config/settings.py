"""Settings, all read from the environment through one `env` object.

Unset, everything falls back to a laptop setup: a local SQLite file, Redis on localhost and
DEBUG on with a development secret. With DEBUG off the service refuses to start without a
real SECRET_KEY, so the development defaults cannot reach production by accident.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as parse_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent


def redis_database_number(url: str) -> int:
    return int(parse_redis_url(url).get("db", 0))


env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)

_DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _DEVELOPMENT_SECRET_KEY
elif not DEBUG and (SECRET_KEY == _DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 32 characters.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # Before django.contrib.auth: its `changepassword` command is replaced by ours.
    "onboarding",
    "config.apps.WizardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    # Its Swagger UI files are then served from here, not fetched from a CDN by the docs page.
    "ninja",
    "outbox",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Threads per web process that run HTTP requests (config/asgi.py).
HTTP_THREADS = env.int("HTTP_THREADS", default=10)

# The admin's messages live in the session: the default cookie storage builds a signer on
# every request, API requests included.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A transaction takes the file's write lock when it begins and waits up to `timeout` for
    # it. Begun deferred (the default) it would first read, then fail at once with "database
    # is locked" when its first write found another writer had committed since. WAL lets
    # readers go on while one transaction writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
elif env.bool("DATABASE_POOL", default=True):
    # HTTP requests run on a pool of threads and socket reads on another: a connection pool
    # hands warm connections to whichever thread asks.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": 10,
    }
    # Our backend checks each pooled connection instead of the pool's own check, which
    # stalled a process for seconds after a database restart (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASE_PGBOUNCER = env.bool("DATABASE_PGBOUNCER", default=False)
if DATABASE_PGBOUNCER and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # PgBouncer in transaction pooling mode gives each transaction whichever server connection
    # is free, so nothing may outlive a transaction: a server-side cursor (`.iterator()`, the
    # choice fields of Django's forms) lives on across them in autocommit, and PgBouncer before
    # 1.21 cannot keep prepared statements. Django prepares none by default; this pins that
    # against a `prepare_threshold` in the URL.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Connections a web process's sockets share (tickets, quotas, leases), per event loop.
REDIS_SOCKET_POOL_SIZE = env.int("REDIS_SOCKET_POOL_SIZE", default=32)

AUTH_USER_MODEL = "onboarding.User"
# Every password check goes through the sign-in attempt limits (onboarding/lockout.py).
AUTHENTICATION_BACKENDS = ["onboarding.lockout.LockoutModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "onboarding.passwords.NotOnlyWhitespaceValidator"},
    {"NAME": "onboarding.passwords.CommonWordWithDigitsValidator"},
]
if env.bool("FAST_PASSWORD_HASHER", default=False):
    # Test runs only: the default hasher's cost per login (README, benchmark section).
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY
if not DEBUG and len(JWT_SIGNING_KEY.encode()) < 32:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must be a random string of at least 32 bytes.")
JWT_ACCESS_TOKEN_LIFETIME = timedelta(seconds=env.int("JWT_ACCESS_TOKEN_LIFETIME", default=900))
JWT_REFRESH_TOKEN_LIFETIME = timedelta(
    seconds=env.int("JWT_REFRESH_TOKEN_LIFETIME", default=7 * 24 * 3600)
)
# However often it is refreshed, a sign-in (one auth/token call) ends this long after it began.
JWT_SIGN_IN_LIFETIME = timedelta(seconds=env.int("JWT_SIGN_IN_LIFETIME", default=30 * 24 * 3600))

# Failed password checks allowed before further attempts answer 429, as N/period
# (onboarding/lockout.py): per account from one client address, and per account in all.
LOGIN_LOCKOUT_PER_ADDRESS = env.str("LOGIN_LOCKOUT_PER_ADDRESS", default="5/15m")
LOGIN_LOCKOUT_PER_ACCOUNT = env.str("LOGIN_LOCKOUT_PER_ACCOUNT", default="100/1h")
# Password hashes (~0.5 s of a core each) running at once per web process; one more is
# answered 503 at once rather than waiting for an HTTP thread (onboarding/lockout.py).
PASSWORD_CHECK_CONCURRENCY = env.int("PASSWORD_CHECK_CONCURRENCY", default=2)
# Reverse proxies in front of the web process that append to X-Forwarded-For: the client
# address is the entry this many from the right. 0: the connection's own address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=CORS_ALLOWED_ORIGINS)

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The web process serves static files itself (WhiteNoise), straight from the apps' folders:
# no collectstatic step to forget. STATIC_ROOT only for a `collectstatic` an operator wants
# (for a CDN or a proxy that serves them).
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True
# Python maps `.ts` to MPEG transport streams: the client's `.d.ts` types are text.
WHITENOISE_MIMETYPES = {".ts": "text/plain"}
# The browser client's sources are served as they are written, under /static/wizard-status/.
STATICFILES_DIRS = [("wizard-status", BASE_DIR / "realtime" / "client" / "src")]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_credentials": {"()": "config.logfilters.RedactCredentials"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "uvicorn.error": {"filters": ["redact_credentials"]},
        "uvicorn.access": {"filters": ["redact_credentials"]},
    },
}
PHONE_NUMBER_DEFAULT_REGION = env.str("PHONE_NUMBER_DEFAULT_REGION", default=None)

# Redis keys live in REDIS_URL's database, but pub/sub channels are server-wide: a layer
# prefix named after the database keeps deployments that share a server (on different
# databases) from hearing each other's pushes.
CHANNEL_LAYER_PREFIX = env.str(
    "CHANNEL_LAYER_PREFIX", default=f"wizard-db{redis_database_number(REDIS_URL)}"
)

# The channel layer's Redis servers. Groups are spread over them by consistent hashing of
# this list, so every web process and worker needs the same list in the same order; changing
# it loses the pushes in flight (the reconciler catches up).
CHANNEL_LAYER_URLS = env.list("CHANNEL_LAYER_URLS", default=[]) or [REDIS_URL]

# Realtime: the pub/sub layer has no per-channel capacity (the core layer silently drops past
# 100 queued messages) and resubscribes after a reconnect. Either way delivery is at most
# once; realtime.reconcile makes every open socket converge to the database on its own.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [
                {"address": url, "socket_timeout": None, "max_connections": 1000}
                for url in CHANNEL_LAYER_URLS
            ],
            "prefix": CHANNEL_LAYER_PREFIX,
        },
    }
}
WEBSOCKET_ALLOWED_ORIGINS = env.list("WEBSOCKET_ALLOWED_ORIGINS", default=CORS_ALLOWED_ORIGINS)
WEBSOCKET_TICKET_TTL_SECONDS = 60
WEBSOCKET_MAX_FRAME_BYTES = 4096
# Refreshes per user (all sockets, all processes), and other frames (ping, ...) per socket.
WEBSOCKET_REFRESH_LIMIT = env.str("WEBSOCKET_REFRESH_LIMIT", default="10/10s")
WEBSOCKET_MESSAGE_LIMIT = env.str("WEBSOCKET_MESSAGE_LIMIT", default="30/10s")
# Handshakes a web process works on at once; past it, 503 at once (realtime/admission.py).
WEBSOCKET_HANDSHAKE_CONCURRENCY = env.int("WEBSOCKET_HANDSHAKE_CONCURRENCY", default=64)
# Handshakes per user (each reads the status for its first message); past it, 4429.
WEBSOCKET_CONNECT_LIMIT = env.str("WEBSOCKET_CONNECT_LIMIT", default="60/m")
WEBSOCKET_RECONCILE_INTERVAL_SECONDS = env.float("WEBSOCKET_RECONCILE_INTERVAL", default=2.0)
WEBSOCKET_RECONCILE_GRACE_SECONDS = 0.25  # for pushes in flight before reading statuses
# Across every web process (realtime/socket_leases.py); a dead process's leases end this soon.
WEBSOCKET_MAX_SOCKETS_PER_USER = env.int("WEBSOCKET_MAX_SOCKETS_PER_USER", default=20)
WEBSOCKET_LEASE_SECONDS = env.float("WEBSOCKET_LEASE_SECONDS", default=15.0)
# A web process walks its whole heap (every socket's objects) once its resident memory has grown
# by this factor since the last such walk; otherwise full collections walk only new objects
# (config/heap.py).
GC_WHOLE_HEAP_GROWTH = env.float("GC_WHOLE_HEAP_GROWTH", default=1.5)

# Quotas (onboarding/quotas.py), each N/period, with defaults a real user never meets.
RATE_LIMIT_WRITES = env.str("RATE_LIMIT_WRITES", default="120/m")  # per user, all writes
RATE_LIMIT_TICKETS = env.str("RATE_LIMIT_TICKETS", default="30/m")  # per user
RATE_LIMIT_REFRESH = env.str("RATE_LIMIT_REFRESH", default="20/m")  # per sign-in
RATE_LIMIT_REGISTER = env.str("RATE_LIMIT_REGISTER", default="30/h")  # per client address
CHANNELS_PER_USER_LIMIT = env.int("CHANNELS_PER_USER_LIMIT", default=10)  # active channels

# Celery: Redis broker. The worker runs its tasks on threads (Procfile): a relay task waits
# on PostgreSQL and Redis most of its time, and a thread starts it sooner than a prefork
# child, which is handed each message through a pipe.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No ack emulation: with it, a worker whose Redis connection dropped while a fetched message
# waited for a busy pool child exited ("Unrecoverable error", Celery 5.7 and kombu 5.7).
# Without it a killed worker loses what it had fetched instead of getting it back after a
# visibility timeout: harmless here, the beat sweep relays every second and the purge runs
# hourly.
CELERY_BROKER_TRANSPORT_OPTIONS = {"ack_emulation": False}
# Task events (three messages to Redis per task, worker CPU on every relay run) are what
# flower shows; flower switches them on every few seconds while it runs, so a worker
# sends them only while someone watches.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", default=False)
# Flower learns of a task from the worker's events; a "sent" event would cost every write
# that nudges the relay another round trip to Redis.
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes the database connection around every task unless this is
# set, and a new connection costs more than a relay run. config/celery.py closes only ones
# broken or older than CONN_MAX_AGE, before each task.
CELERY_DB_REUSE_MAX = 2**31
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# Outbox relay
OUTBOX_RELAY_BATCH_SIZE = env.int("OUTBOX_RELAY_BATCH_SIZE", default=500)
OUTBOX_RELAY_TIME_BUDGET_SECONDS = env.float("OUTBOX_RELAY_TIME_BUDGET", default=5.0)
# A nudged relay that finds nothing more waits this long for the next commit's wake-up before
# it ends: under a stream of writes one task relays them all, each sooner than a new task would.
OUTBOX_RELAY_IDLE_WAIT_SECONDS = env.float("OUTBOX_RELAY_IDLE_WAIT", default=2.0)
OUTBOX_CLAIM_TIMEOUT_SECONDS = env.float("OUTBOX_CLAIM_TIMEOUT", default=10.0)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE", default=0.5)
OUTBOX_BACKOFF_CAP_SECONDS = env.float("OUTBOX_BACKOFF_CAP", default=60.0)
OUTBOX_SWEEP_INTERVAL_SECONDS = env.float("OUTBOX_SWEEP_INTERVAL", default=1.0)
OUTBOX_RETENTION = timedelta(days=env.float("OUTBOX_RETENTION_DAYS", default=7))
OUTBOX_PURGE_BATCH_SIZE = env.int("OUTBOX_PURGE_BATCH_SIZE", default=5000)

# Metrics: counters of every process (web, workers) are summed through files in this folder.
# Empty: this process counts in memory only (flower's Procfile line: its own series stay out
# of the web's /metrics).
PROMETHEUS_MULTIPROC_DIR = env.str(
    "PROMETHEUS_MULTIPROC_DIR", default=str(BASE_DIR / "var" / "prometheus")
)
if PROMETHEUS_MULTIPROC_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
# prometheus-client picks where values live when it is first imported, and the celery command
# line imports it (flower's plugin) before these settings run: pick again, before any of our
# metrics exist.
if (prometheus_values := sys.modules.get("prometheus_client.values")) is not None:
    prometheus_values.ValueClass = prometheus_values.get_value_class()
# /metrics answers only requests with this Bearer token, and/or from these networks (CIDR,
# the client address as onboarding/lockout.py reads it). Unset: anyone who reaches it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

CELERY_BEAT_SCHEDULE = {
    # The sweep makes delivery certain after a lost nudge; `expires` stops a backlog of
    # sweeps from piling up while the workers are down.
    "outbox-sweep": {
        "task": "outbox.relay",
        "schedule": OUTBOX_SWEEP_INTERVAL_SECONDS,
        "kwargs": {"sweep": True},
        "options": {"expires": max(OUTBOX_SWEEP_INTERVAL_SECONDS, 1.0)},
    },
    "outbox-purge": {
        "task": "outbox.purge_relayed",
        "schedule": 3600.0,
        "options": {"expires": 600},
    },
}

# What the web process accepts per request (config/http_server.py, the Procfile's `--http`):
# the request line and headers at most HTTP_MAX_HEADER_BYTES (else 431), complete within
# HTTP_HEADER_TIMEOUT seconds and the body within HTTP_BODY_TIMEOUT seconds (else 408).
HTTP_MAX_HEADER_BYTES = env.int("HTTP_MAX_HEADER_BYTES", default=32 * 1024)
HTTP_HEADER_TIMEOUT_SECONDS = env.float("HTTP_HEADER_TIMEOUT", default=10.0)
HTTP_BODY_TIMEOUT_SECONDS = env.float("HTTP_BODY_TIMEOUT", default=30.0)
if HTTP_MAX_HEADER_BYTES < 1024 or min(HTTP_HEADER_TIMEOUT_SECONDS, HTTP_BODY_TIMEOUT_SECONDS) <= 0:
    raise ImproperlyConfigured(
        "HTTP_MAX_HEADER_BYTES must be at least 1024; HTTP_HEADER_TIMEOUT and "
        "HTTP_BODY_TIMEOUT must be positive."
    )

"""Django's stock middleware, declared sync-only.

Under ASGI, Django runs each `process_request`/`process_response` of an async-capable
middleware in its own thread hop: about 15 hops per request, ~5 ms on these machines. As
sync-only middleware the whole stack and the (sync) view run in one hop.
"""

from corsheaders.middleware import CorsMiddleware as _Cors
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Message
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptions
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.security import SecurityMiddleware as _Security


class _SyncOnly:
    sync_capable = True
    async_capable = False


class SecurityMiddleware(_SyncOnly, _Security):
    pass


class CorsMiddleware(_SyncOnly, _Cors):
    pass


class SessionMiddleware(_SyncOnly, _Session):
    pass


class CommonMiddleware(_SyncOnly, _Common):
    pass


class CsrfViewMiddleware(_SyncOnly, _Csrf):
    pass


class AuthenticationMiddleware(_SyncOnly, _Authentication):
    pass


class MessageMiddleware(_SyncOnly, _Message):
    pass


class XFrameOptionsMiddleware(_SyncOnly, _XFrameOptions):
    pass

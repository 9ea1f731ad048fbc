"""Handshake admission: how many socket handshakes a web process works on at once.

In a deploy's reconnect storm every client of the restarted process comes back within
seconds. A handshake costs Redis round trips, a database read on the process's one database
thread and the first status; past a few hundred a second the queue grows, clients give up
waiting (their handshakes still worked on, then thrown away) and try again: at 10,000
sockets on one process, 9 in 10 had not come back after two minutes (README, *Reconnect
storm*). So past `WEBSOCKET_HANDSHAKE_CONCURRENCY` handshakes in progress a new one is
answered at once, 503 with `Retry-After`, before any work: the client backs off and retries
while the process works through the handshakes it took.
"""

from django.conf import settings

from realtime.metrics import HANDSHAKES_REFUSED

_HANDSHAKE_ENDS = frozenset(
    {"websocket.accept", "websocket.close", "websocket.http.response.start"}
)
_BUSY_HEADERS = [(b"retry-after", b"1"), (b"content-type", b"text/plain; charset=utf-8")]


class HandshakeAdmission:
    def __init__(self, app) -> None:
        self.app = app
        self.in_progress = 0

    async def __call__(self, scope, receive, send):
        if self.in_progress >= settings.WEBSOCKET_HANDSHAKE_CONCURRENCY:
            HANDSHAKES_REFUSED.inc()
            await receive()  # websocket.connect
            await send(
                {"type": "websocket.http.response.start", "status": 503, "headers": _BUSY_HEADERS}
            )
            await send({"type": "websocket.http.response.body", "body": b"Busy; retry.\n"})
            return
        self.in_progress += 1
        in_handshake = True

        def handshake_over() -> None:
            nonlocal in_handshake
            if in_handshake:
                in_handshake = False
                self.in_progress -= 1

        async def tracked_send(message) -> None:
            if in_handshake and message["type"] in _HANDSHAKE_ENDS:
                handshake_over()
            await send(message)

        try:
            return await self.app(scope, receive, tracked_send)
        finally:
            handshake_over()

"""The web process's HTTP protocol: uvicorn's httptools protocol with bounds on what it accepts.

Stock uvicorn keeps reading a request's headers into memory for as long as they last (four
50 MB headers took the two workers of a web process from 208 to 609 MB) and waits forever for
a request that stops half-way: slow or stalled clients could hold every file descriptor and,
through a trickling body, every HTTP thread (config/asgi.py). `BoundedHttpToolsProtocol`
adds, per request (the environment variables, read in config/settings.py):

- a size limit on the request line and headers, `HTTP_MAX_HEADER_BYTES`: past it the answer is
  431 and the connection closes, without reading more of the request into memory;
- a deadline for the request line and headers, `HTTP_HEADER_TIMEOUT` seconds: from the opening
  of the connection for its first request, from the first byte of each later one (keep-alive,
  pipelined). Past it: 408 and close (a connection that never sent a byte is just closed);
- a deadline for the body, `HTTP_BODY_TIMEOUT` seconds, from the end of the headers. Past it:
  408 and close, or only close if a response has begun.

A deadline that passes while the delay is the server's starts again instead: while uvicorn has
stopped reading (back-pressure when the application has not taken the body yet, a pipelined
request waiting its turn), or while the client waits for a "100 Continue" not yet sent.

uvicorn's keep-alive timeout between requests (`--timeout-keep-alive`) is unchanged, and a
WebSocket upgrade leaves both deadlines behind once its headers are complete.

Selected by the Procfile's web line: `--http config.http_server:BoundedHttpToolsProtocol`.
"""

import asyncio
import functools
from dataclasses import dataclass
from http import HTTPStatus

import httptools
from django.conf import settings
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# After a 431 the server sends FIN and discards what still arrives for this long before it
# closes: the client is likely still sending its headers, and closing with unread input makes
# the kernel answer with RST, which can destroy the 431 before the client has read it. A client
# that timed out has stopped sending; its connection closes at once, freeing the descriptor.
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float


@functools.cache
def http_limits() -> HttpLimits:
    """The limits from the Django settings (read at the first connection, not at import)."""
    return HttpLimits(
        max_header_bytes=settings.HTTP_MAX_HEADER_BYTES,
        header_timeout=settings.HTTP_HEADER_TIMEOUT_SECONDS,
        body_timeout=settings.HTTP_BODY_TIMEOUT_SECONDS,
    )


class _HeaderFieldsTooLarge(Exception):
    """Raised inside a parser callback; httptools re-raises it as the context of its error."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = http_limits()
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # no request yet, or the last one was read in full
        self._header_bytes_read = 0  # bytes read while the headers are incomplete
        self._headers_completed = 0
        self._request_begun = False  # a byte of the awaited request has arrived
        self._refused = False  # nothing more is parsed: a refusal is sent or waits its turn
        self._deferred_refusal: HTTPStatus | None = None

    # Connection

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadlines()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # refused: discard whatever still arrives
        self._unset_keepalive_if_required()
        if self._awaiting_headers:
            self._request_begun = True
            room = self.limits.max_header_bytes - self._header_bytes_read
            if len(data) > room:
                # Feed only what the limit allows; unless the headers end within it, refuse.
                completed = self._headers_completed
                head, data = data[:room], data[room:]
                self._header_bytes_read += len(head)
                if not self._feed(head):
                    return
                if self._headers_completed == completed:
                    self._refuse_headers_too_large()
                    return
            else:
                self._header_bytes_read += len(data)
        if self._feed(data):
            self._start_deadlines()

    def _feed(self, data: bytes) -> bool:
        """Parse `data` as uvicorn does; False when the rest of this read must not be parsed."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeaderFieldsTooLarge):
                self._refuse_headers_too_large()
            else:
                self._answer_invalid_request()
            return False
        except httptools.HttpParserError:
            self._answer_invalid_request()
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False  # uvicorn parses nothing after an upgrade in the same read
        return not (self._refused or self.transport.is_closing())

    def _answer_invalid_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_deadlines()
        super().handle_websocket_upgrade()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._headers_completed += 1
        self._awaiting_headers = False
        self._header_bytes_read = 0
        self._cancel(self._header_deadline)
        self._header_deadline = None
        # The limit on bytes read (data_received) is exact for a request that starts a read;
        # one that came in the same read as the end of the request before it (pipelined) is
        # held to the same limit by its parsed size (": " and CRLF count 4).
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise _HeaderFieldsTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel(self._body_deadline)
        self._body_deadline = None
        self._awaiting_headers = True
        self._request_begun = False
        super().on_message_complete()

    # Deadlines

    def _start_deadlines(self) -> None:
        """After a read, a deadline for the part of a request it left incomplete.

        Armed here rather than in the parser's callbacks, so a request that a single read
        brings whole (most of them) costs no timer at all.
        """
        if self._awaiting_headers:
            if self._request_begun:
                self._start_header_deadline()
        elif self._body_deadline is None:
            self._start_body_deadline()

    def _start_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.limits.header_timeout, self._header_timed_out
            )

    def _start_body_deadline(self) -> None:
        self._body_deadline = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    @staticmethod
    def _cancel(deadline: asyncio.TimerHandle | None) -> None:
        if deadline is not None:
            deadline.cancel()

    def _cancel_deadlines(self) -> None:
        self._cancel(self._header_deadline)
        self._cancel(self._body_deadline)
        self._header_deadline = self._body_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server, not the client, stopped reading
            self._start_header_deadline()
            return
        if not self._request_begun:
            self.transport.close()  # a new connection that never sent a byte: no answer
            return
        self._refuse_after_responses(HTTPStatus.REQUEST_TIMEOUT)

    def _body_timed_out(self) -> None:
        self._body_deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._start_body_deadline()  # the delay is the server's
            return
        # This request's own response: 408 unless it has begun (then there is no answer).
        self._refuse(HTTPStatus.REQUEST_TIMEOUT if not self.cycle.response_started else None)

    # Refusals

    def _refuse_headers_too_large(self) -> None:
        self._refuse_after_responses(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def _refuse_after_responses(self, status: HTTPStatus) -> None:
        """Refuse the request being read, after the responses to earlier (pipelined) ones."""
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(status)
            return
        self._refused = True
        self._deferred_refusal = status
        self._cancel_deadlines()
        self.flow.pause_reading()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # `self.cycle` is the newest request's: complete means no pipelined one is left.
        if (
            self._deferred_refusal is not None
            and self.cycle.response_complete
            and not self.transport.is_closing()
        ):
            self._refuse(self._deferred_refusal)

    def _refuse(self, status: HTTPStatus | None) -> None:
        """Answer `status` (None: no answer, a response has begun) and close the connection."""
        self._refused = True
        self._deferred_refusal = None
        self._cancel_deadlines()
        if self.cycle is not None and not self.cycle.response_complete:
            # The application's receive() ends with a disconnect, its send() goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if status is None:
            self.transport.close()
            return
        self.logger.info("%s: %d %s", self._client_label(), status, status.phrase)
        self.transport.write(self._refusal(status))
        if status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE and self.transport.can_write_eof():
            self.flow.resume_reading()
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _refusal(self, status: HTTPStatus) -> bytes:
        body = status.phrase.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
        return b"".join(content)

    def _client_label(self) -> str:
        return "{}:{}".format(*self.client) if self.client else "client"

"""A socket's handshake reads the database once: the first status and the credentials check
in one statement. A deploy's reconnect storm costs the database one small read per socket."""

import threading

import jwt
import pytest
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from onboarding.models import SignIn
from realtime.reconcile import registry
from tests.realtime.conftest import (
    access_token,
    assert_status_is_current,
    closed,
    connect,
    db_call,
    mint_ticket,
    receive_close,
    receive_json,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


class StatementLog:
    """Every statement run through Django, from any thread (the consumer reads on its own)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.lock = threading.Lock()

    def install(self, monkeypatch) -> "StatementLog":
        original = CursorWrapper.execute

        def execute(cursor, sql, params=None):
            with self.lock:
                self.statements.append(sql)
            return original(cursor, sql, params)

        monkeypatch.setattr(CursorWrapper, "execute", execute)
        return self

    def clear(self) -> None:
        with self.lock:
            self.statements.clear()


@pytest.fixture
def statements(monkeypatch) -> StatementLog:
    return StatementLog().install(monkeypatch)


async def handshake_statements(communicator, user, statements: StatementLog) -> int:
    """Opens the socket; the statements run until its first status, which must be current."""
    since = timezone.now()
    statements.clear()
    assert await connect(communicator) is True
    first = await receive_json(communicator)
    count = len(statements.statements)
    await assert_status_is_current(first, user.pk, since=since)
    return count


async def test_a_token_socket_reads_once(user, sockets, statements):
    communicator = sockets(f"token={await db_call(access_token)(user)}")
    assert await handshake_statements(communicator, user, statements) == 1
    await communicator.disconnect()


async def test_a_ticket_socket_reads_once(user, sockets, statements):
    communicator = sockets(f"ticket={await db_call(mint_ticket)(user)}")
    assert await handshake_statements(communicator, user, statements) == 1
    await communicator.disconnect()


async def test_a_session_socket_reads_the_session_and_the_user_first(user, sockets, statements):
    communicator = sockets(headers=[(b"cookie", await db_call(session_cookie)(user))])
    # The session row, the user (its password hash signs the session), then the opening.
    assert await handshake_statements(communicator, user, statements) == 3
    await communicator.disconnect()


async def test_a_token_of_an_ended_sign_in_is_refused_in_that_one_read(user, sockets, statements):
    token = await db_call(access_token)(user)
    sign_in_id = jwt.decode(token, options={"verify_signature": False})["sid"]
    await db_call(SignIn.objects.filter(pk=sign_in_id).update)(ended_at=timezone.now())
    statements.clear()
    communicator = sockets(f"token={token}")
    assert await connect(communicator) is True
    assert await receive_close(communicator) == closed(4401)
    assert len(statements.statements) == 1
    assert registry.count(user.pk) == 0
    await communicator.disconnect()


async def test_a_revoked_token_cannot_spend_its_users_handshakes(user, sockets, settings):
    """The connect limit counts handshakes whose credentials stood: someone replaying a
    revoked token in a loop does not lock the user's own tabs out (4429)."""
    settings.WEBSOCKET_CONNECT_LIMIT = "2/m"
    revoked = await db_call(access_token)(user)
    sign_in_id = jwt.decode(revoked, options={"verify_signature": False})["sid"]
    await db_call(SignIn.objects.filter(pk=sign_in_id).update)(ended_at=timezone.now())
    for _ in range(5):
        replayed = sockets(f"token={revoked}")
        assert await connect(replayed) is True
        assert await receive_close(replayed) == closed(4401)
        await replayed.disconnect()

    own = sockets(f"token={await db_call(access_token)(user)}")
    assert await connect(own) is True
    assert (await receive_json(own))["type"] == "wizard_status"
    await own.disconnect()

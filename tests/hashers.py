"""Password hashers for tests: one that counts its work, one a test can hold mid-hash.

Selected with `settings.PASSWORD_HASHERS` in a test; they hash like Django's MD5 hasher
(the suite's fast one) and add only what the test observes.
"""

import threading

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """Counts password checks, so a test can tell that a refused attempt cost no hashing."""

    lock = threading.Lock()
    verifications = 0

    def verify(self, password, encoded):
        with CountingHasher.lock:
            CountingHasher.verifications += 1
        return super().verify(password, encoded)

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.verifications = 0


class GatedHasher(MD5PasswordHasher):
    """The first hash after `arm` (a new password's, or a check of one) signals `started`
    and waits for `proceed`: a test commits other writes meanwhile, as the ~0.3 s of a real
    hash lets them."""

    lock = threading.Lock()
    gated = True
    started = threading.Event()
    proceed = threading.Event()

    def encode(self, password, salt):
        self._hold()
        return super().encode(password, salt)

    def verify(self, password, encoded):
        self._hold()
        return super().verify(password, encoded)

    @classmethod
    def _hold(cls) -> None:
        with cls.lock:
            first, cls.gated = not cls.gated, True
        if first:
            cls.started.set()
            assert cls.proceed.wait(timeout=30), "the test never let the hash finish"

    @classmethod
    def arm(cls) -> None:
        cls.started.clear()
        cls.proceed.clear()
        cls.gated = False

    @classmethod
    def disarm(cls) -> None:
        cls.gated = True
        cls.proceed.set()  # never leave a thread waiting

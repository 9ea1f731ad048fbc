"""Password hashers for tests: one that counts its work, one a test can hold mid-hash.

Selected with `settings.PASSWORD_HASHERS` in a test; they hash like Django's MD5 hasher
(the suite's fast one) and add only what the test observes.
"""

import threading

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """Counts password checks, so a test can tell that a refused attempt cost no hashing."""

    algorithm = "md5"
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
    """Hashing a new password signals `hashing` and waits for `proceed`: a test can commit
    other writes while a password change is mid-way, as a slow real hash allows."""

    algorithm = "md5"
    hashing = threading.Event()
    proceed = threading.Event()

    def encode(self, password, salt):
        if GatedHasher.hashing.is_set() is False and not GatedHasher.proceed.is_set():
            GatedHasher.hashing.set()
            assert GatedHasher.proceed.wait(timeout=30), "the test never let the hash finish"
        return super().encode(password, salt)

    @classmethod
    def reset(cls) -> None:
        cls.hashing.clear()
        cls.proceed.clear()

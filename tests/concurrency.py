"""Helpers for tests that race real transactions against each other (PostgreSQL)."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_behind_barrier(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker at once, each in a thread with its own database connection;
    return each one's result or the exception it raised."""
    barrier = threading.Barrier(len(workers))
    outcomes: list[Any] = [None] * len(workers)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = work()
        except BaseException as error:
            outcomes[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, work)) for index, work in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [thread.is_alive() for thread in threads] == [False] * len(threads)
    return outcomes


def in_thread(work: Callable[[], Any]) -> "Running":
    """Start `work` in a thread with its own connection; `.result()` waits for it."""
    running = Running(work)
    running.thread.start()
    return running


class Running:
    def __init__(self, work: Callable[[], Any]) -> None:
        self.outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                self.outcome["value"] = work()
            except BaseException as error:
                self.outcome["error"] = error
            finally:
                connection.close()

        self.thread = threading.Thread(target=run)

    def result(self, timeout: float = 30) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the thread did not finish in time"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome.get("value")

"""The collector policy of long-lived processes (config/heap.py)."""

import gc
import weakref

import pytest

from config import heap


@pytest.fixture(autouse=True)
def unfrozen():
    """What a test freezes goes back to the collector: the test process lives on."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_survivors_of_a_full_collection_are_frozen(monkeypatch):
    monkeypatch.setattr(heap, "_resident_bytes", lambda: 100)
    freezer = heap.SurvivorFreezer(whole_heap_growth=1.5)
    kept = [Cycle() for _ in range(100)]
    freezer.check()  # no full collection since: nothing to do
    assert gc.get_freeze_count() == 0
    gc.collect()
    freezer.check()
    assert gc.get_freeze_count() >= len(kept)


def test_garbage_among_frozen_objects_waits_for_the_whole_heap_walk(monkeypatch):
    resident = [100]
    monkeypatch.setattr(heap, "_resident_bytes", lambda: resident[0])
    freezer = heap.SurvivorFreezer(whole_heap_growth=1.5)
    garbage = [Cycle() for _ in range(1000)]
    alive = [weakref.ref(each) for each in garbage]
    gc.collect()
    freezer.check()
    del garbage  # cyclic: only a walk that sees the frozen heap frees it
    gc.collect()
    freezer.check()
    assert all(ref() is not None for ref in alive)  # not grown enough to walk it all

    resident[0] = 151  # grown by more than half since the last whole walk
    gc.collect()
    freezer.check()
    assert all(ref() is None for ref in alive)
    assert freezer.resident_after_whole_walk == 151

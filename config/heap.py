"""The garbage collector in long-lived processes that hold many long-lived objects.

CPython's full collection walks every tracked object with every thread stopped. A web process
holds Django's start-up heap (~120,000 objects) and ~160 objects per open socket for as long
as they live; walking them took 85 ms at 500 sockets and 1.0-1.3 s at 10,000, every 20-30 s
under pushes, and each walk delayed every push behind it (measured with `gc.callbacks`; the
README's benchmark section). Neither heap is garbage, so walking it again finds nothing.

So start-up's heap is frozen once (`gc.freeze()`: the collector no longer walks it), and in a
web process, after each full collection the collector ran on its own, whatever survived it is
frozen too: the next one walks only what was allocated since. Cyclic garbage among frozen
objects (what a closed socket leaves) waits until the process's resident memory has grown by
`whole_heap_growth` since the last walk of the whole heap; then one walk of the whole heap
frees it. (Resident memory, not `gc.get_freeze_count()`: counting the frozen objects walks
them all, 25 ms at 1.6 million.)
"""

import gc
import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_FULL = 2  # the oldest generation


def freeze_startup_heap() -> None:
    gc.collect()  # start-up's own garbage is freed, not frozen
    gc.freeze()


def _full_collections() -> int:
    return gc.get_stats()[_FULL]["collections"]


def _resident_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:  # not Linux: count what is frozen instead
        return gc.get_freeze_count()
    return pages * os.sysconf("SC_PAGE_SIZE")


class SurvivorFreezer:
    """Freezes what survives each full collection; walks the whole heap once the process has
    grown by `whole_heap_growth`."""

    def __init__(self, *, whole_heap_growth: float) -> None:
        self.whole_heap_growth = whole_heap_growth
        self.full_seen = _full_collections()
        self.resident_after_whole_walk = _resident_bytes()

    def check(self) -> None:
        if _full_collections() == self.full_seen:
            return
        if _resident_bytes() > self.whole_heap_growth * self.resident_after_whole_walk:
            started = time.perf_counter()
            gc.unfreeze()
            collected = gc.collect()
            gc.freeze()
            self.resident_after_whole_walk = _resident_bytes()
            logger.info(
                "Whole heap collected: %d objects freed in %.0f ms, %d MiB resident",
                collected,
                1000 * (time.perf_counter() - started),
                self.resident_after_whole_walk // 2**20,
            )
        else:
            gc.freeze()
        self.full_seen = _full_collections()


def freeze_survivors_in_background(
    *, whole_heap_growth: float, every_seconds: float = 1.0
) -> threading.Thread:
    freezer = SurvivorFreezer(whole_heap_growth=whole_heap_growth)
    wake = threading.Event()

    def watch() -> None:
        while not wake.wait(every_seconds):
            freezer.check()

    thread = threading.Thread(target=watch, name="gc-survivor-freezer", daemon=True)
    thread.start()
    return thread

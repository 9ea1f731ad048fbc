"""The fault suite's short form: two rounds that inject every kind of fault at least once.

About 3 minutes on a 2-core machine, so it runs on demand (deselected by default):
`uv run pytest -m faults -s`. The soak runs the same rounds for longer:
`uv run python -m tests.faults.chaos --minutes 10`.
"""

import asyncio
import random
from collections import Counter

import pytest

from tests.faults.chaos import FAULT_KINDS, Config, report, run

pytestmark = pytest.mark.faults


def test_no_socket_misses_an_update_whatever_dies():
    seed = random.randrange(2**32)
    result = asyncio.run(run(Config(rounds=2, seed=seed)))

    report(result)  # the summary line, shown with -s
    assert result.violations == [], f"seed {seed}: {result.summary}"
    assert result.faults == Counter(FAULT_KINDS)  # every kind, once
    # After each fault all 100 sockets (50 users, 2 each) were checked against the database.
    assert result.sockets_checked == 100 * len(FAULT_KINDS)

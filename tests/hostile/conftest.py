"""Fixtures of the socket and end-to-end suites, shared with the hostile-input tests.

Imported, not copied: the hostile tests run the same real channel layer (a private prefix),
the same socket helpers and the same process harness as the tests they build on.
"""

from tests.e2e.conftest import (  # noqa: F401
    harness_factory,
    pytest_runtest_makereport,
)
from tests.realtime.conftest import (  # noqa: F401
    close_consumer_thread_connections,
    own_channel_layer_prefix,
    reconciler_off,
    redis_client,
    sockets,
)

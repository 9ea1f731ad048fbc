from prometheus_client import Counter, Gauge, Histogram

SOCKET_CONNECTIONS = Gauge(
    "wizard_socket_connections",
    "Open wizard-status sockets",
    multiprocess_mode="livesum",
)

# What keeping every socket converged costs a web process, each round: the version query (on
# the database thread, which holds the GIL while it binds ids and reads rows) and the pass
# over the sockets on the event loop, when no push can go out.
RECONCILE_SECONDS = Histogram(
    "wizard_socket_reconcile_seconds",
    "One reconciliation round of a web process's sockets, by part",
    ["part"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)

HANDSHAKES_REFUSED = Counter(
    "wizard_socket_handshakes_refused",
    "Socket handshakes answered 503 because the process had as many in progress as it takes",
)

from prometheus_client import Gauge

SOCKET_CONNECTIONS = Gauge(
    "wizard_socket_connections",
    "Open wizard-status sockets",
    multiprocess_mode="livesum",
)

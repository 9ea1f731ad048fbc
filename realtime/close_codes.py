"""Close codes of the wizard-status socket (contract sections 2 and 6)."""

CLOSE_UNAUTHENTICATED = 4401  # missing, invalid, expired, reused or revoked credentials
CLOSE_FORBIDDEN = 4403  # an inactive or deactivated account
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_MESSAGE_TOO_BIG = 1009
# A socket let go because its client does not read: the code cannot reach such a client,
# which sees the connection end; it is what `disconnect` is told.
CLOSE_NOT_READING = 1008

"""Django's PostgreSQL backend, with a pool that gets going again at once after a restart."""

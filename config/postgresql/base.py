"""Django's PostgreSQL backend; the pooled connection it takes is checked here.

Django's own pool check (CONN_HEALTH_CHECKS) is psycopg_pool's: a broken connection is
dropped and the next pooled one tried after a backoff of 1 s, then 2 s, 4 s... After a
database restart every pooled connection is broken, so a process with several idle ones
stalled for 1 + 2 + 4 + ... s, up to the pool timeout, in the one thread that runs all its
database work: requests, socket snapshots and the reconciler (the fault suite measured
sockets converging 8-10 s after a fast PostgreSQL restart). Here one broken connection makes
the pool check all the others at once, and the next one it hands out is new: no backoff.
"""

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.pool is None:
            return connection
        try:
            ConnectionPool.check_connection(connection)
        except Exception:
            self.pool.putconn(connection)  # broken: the pool discards it and opens another
            self.pool.check()  # the other idle ones most likely broke with it
            connection = super().get_new_connection(conn_params)
        return connection

# Sourced by scripts/test and scripts/run: start local PostgreSQL and Redis when they are not up.

ensure_uv() {
    if ! command -v uv >/dev/null 2>&1; then
        python3 -m pip install --quiet --disable-pip-version-check uv
    fi
    uv sync --frozen --quiet
}

wait_for() {  # wait_for <what> <command...>: poll for up to 30 s
    local what=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "$what did not come up" >&2
    return 1
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is not installed" >&2
        return 1
    fi
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "Redis is not running on 127.0.0.1:6379 and redis-server is not installed" \
             "(Debian: apt-get install redis-server)" >&2
        return 1
    fi
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

ensure_debian_binary() {  # $1: the binary's path, $2: its Debian package; installed as root
    if [ -x "$1" ]; then return 0; fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$2 is missing at $1: apt-get install $2" >&2
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

ensure_chromium() {  # Debian's Chromium for the browser tests (Playwright drives it)
    ensure_debian_binary "${CHROMIUM:-/usr/bin/chromium}" chromium
}

ensure_pgbouncer() {  # Debian's PgBouncer for the end-to-end tests (each starts its own)
    ensure_debian_binary "${PGBOUNCER:-/usr/sbin/pgbouncer}" pgbouncer
}

ensure_client_packages() {  # the browser client's test dependencies (React, Vue, TypeScript)
    local client=realtime/client
    if ! command -v npm >/dev/null 2>&1; then
        echo "Node.js and npm are needed for the browser client's tests" >&2
        return 1
    fi
    if [ ! -f "$client/node_modules/.package-lock.json" ] \
        || [ "$client/package-lock.json" -nt "$client/node_modules/.package-lock.json" ]; then
        (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

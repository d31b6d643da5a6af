#!/usr/bin/env bash
# Make sure a local PostgreSQL server (Debian package `postgresql`) is installed
# and running on 127.0.0.1:5432 with role and database `container_manager`
# (password `container_manager`, CREATEDB so the test runner can create test_*
# databases). Idempotent. Progress goes to stderr; the last (only) stdout line
# is the DATABASE_URL:   DATABASE_URL=$(infra/postgres.sh | tail -1)
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=5432
NAME=container_manager   # role, password and database
URL="postgres://$NAME:$NAME@$HOST:$PORT/$NAME"

# Ready when we can log in over TCP with the app credentials and have CREATEDB.
app_ready() {
    [ "$(PGPASSWORD=$NAME PGCONNECT_TIMEOUT=3 psql -X -qAt -h "$HOST" -p "$PORT" -U "$NAME" -d "$NAME" \
        -c 'SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user' 2>/dev/null)" = t ]
}

if command -v psql >/dev/null 2>&1 && app_ready; then
    log "PostgreSQL is up at $HOST:$PORT with role/database $NAME"
    echo "$URL"
    exit 0
fi

is_root || die "PostgreSQL at $HOST:$PORT is not usable as $NAME, and not root, so cannot install/start/configure it"

# Pick the highest installed major version.
detect_version() {
    local d
    # An if, not `[ ] &&`: with nothing installed the loop must still succeed (pipefail).
    for d in /usr/lib/postgresql/*/bin/postgres; do
        if [ -x "$d" ]; then basename "$(dirname "$(dirname "$d")")"; fi
    done | sort -V | tail -1
}

VER=$(detect_version)
if [ -z "$VER" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
    VER=$(detect_version)
    [ -n "$VER" ] || die "installed postgresql but found no server under /usr/lib/postgresql/"
fi
log "PostgreSQL server version $VER"

# Cluster "main" (the package normally creates it; recreate if it is missing).
cluster_line() { pg_lsclusters -h 2>/dev/null | awk -v v="$VER" '$1 == v && $2 == "main"'; }
if [ -z "$(cluster_line)" ]; then
    log "creating cluster $VER/main on port $PORT"
    pg_createcluster --port "$PORT" "$VER" main >&2
fi
cport=$(cluster_line | awk '{print $3}')
[ "$cport" = "$PORT" ] || die "cluster $VER/main is configured for port $cport, not $PORT
  (another cluster probably holds $PORT: see pg_lsclusters)"

if [ "$(cluster_line | awk '{print $4}')" != online ]; then
    log "starting cluster $VER/main"
    pg_ctlcluster "$VER" main start >&2 || {
        tail -n 20 "/var/log/postgresql/postgresql-$VER-main.log" >&2 2>/dev/null || true
        die "pg_ctlcluster $VER main start failed"
    }
fi
wait_for 30 pg_isready -q -h "$HOST" -p "$PORT" \
    || die "PostgreSQL $VER/main does not accept connections on $HOST:$PORT (is listen_addresses localhost?)"

# Role and database, as the postgres superuser over the local socket.
as_postgres_psql() { (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" "$@"); }
log "ensuring role and database $NAME"
as_postgres_psql -d postgres >&2 <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$NAME') THEN
        CREATE ROLE $NAME LOGIN CREATEDB PASSWORD '$NAME';
    ELSE
        ALTER ROLE $NAME LOGIN CREATEDB PASSWORD '$NAME';
    END IF;
END
\$\$;
SQL
if [ "$(as_postgres_psql -d postgres -At -c "SELECT 1 FROM pg_database WHERE datname = '$NAME'")" != 1 ]; then
    as_postgres_psql -d postgres -c "CREATE DATABASE $NAME OWNER $NAME" >&2
else
    as_postgres_psql -d postgres -c "ALTER DATABASE $NAME OWNER TO $NAME" >&2
fi

app_ready || die "created role/database but cannot log in as $NAME over TCP at $HOST:$PORT (check pg_hba.conf)"
log "PostgreSQL is up at $HOST:$PORT with role/database $NAME"
echo "$URL"

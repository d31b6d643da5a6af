#!/usr/bin/env bash
# Make sure PgBouncer (Debian package `pgbouncer`) runs in transaction-pooling mode on
# 127.0.0.1:${CM_PGBOUNCER_PORT:-6432} in front of the PostgreSQL at
# 127.0.0.1:${CM_PGBOUNCER_SERVER_PORT:-5432}, every database name passed through (`* =`, so the
# test runner's test_* databases work too), the app's role `container_manager` authenticated
# with md5 from a userlist this script writes. At most ${CM_PGBOUNCER_POOL_SIZE:-20} server
# connections per database and user. Idempotent. Progress goes to stderr; the last (only)
# stdout line is the DATABASE_URL through the pooler:
#     DATABASE_URL=$(infra/pgbouncer.sh | tail -1)
# The app must know it is pooled: port 6432 says so, or CM_DB_POOLER=transaction
# (docs/configuration.md). Config, log and pid file: $CM_INFRA_DIR/pgbouncer-<port>/.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=${CM_PGBOUNCER_PORT:-6432}
SERVER_PORT=${CM_PGBOUNCER_SERVER_PORT:-5432}
POOL_SIZE=${CM_PGBOUNCER_POOL_SIZE:-20}
NAME=container_manager   # role, password and database, as infra/postgres.sh makes them
URL="postgres://$NAME:$NAME@$HOST:$PORT/$NAME"
DIR="$CM_INFRA_DIR/pgbouncer-$PORT"

# Ready when the app's role logs in through the pooler and reaches the server behind it.
pooled_ready() {
    [ "$(PGPASSWORD=$NAME PGCONNECT_TIMEOUT=3 psql -X -qAt -h "$HOST" -p "$PORT" -U "$NAME" \
        -d "$NAME" -c 'SHOW port' 2>/dev/null)" = "$SERVER_PORT" ]
}

if command -v psql >/dev/null 2>&1 && pooled_ready; then
    log "PgBouncer is up at $HOST:$PORT in front of port $SERVER_PORT"
    echo "$URL"
    exit 0
fi

is_root || die "PgBouncer at $HOST:$PORT is not usable as $NAME, and not root, so cannot install/start it"
command -v pgbouncer >/dev/null 2>&1 || apt_install pgbouncer

ensure_state_dir
mkdir -p "$DIR"
# PgBouncer refuses to run as root: it runs as postgres, which must read its files.
cat >"$DIR/pgbouncer.ini" <<INI
[databases]
* = host=$HOST port=$SERVER_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $PORT
unix_socket_dir =
auth_type = md5
auth_file = $DIR/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 2000
; Idle server connections are closed soon, so DROP DATABASE of a test database is not refused
; for long; clients still find a pooled connection within a burst.
server_idle_timeout = 10
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
printf '"%s" "%s"\n' "$NAME" "$NAME" >"$DIR/userlist.txt"
chown -R postgres: "$DIR"
chmod 600 "$DIR/userlist.txt"

if [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null; then
    log "reloading PgBouncer (pid $(cat "$DIR/pgbouncer.pid"))"
    kill -HUP "$(cat "$DIR/pgbouncer.pid")"
else
    log "starting PgBouncer on $HOST:$PORT (log: $DIR/pgbouncer.log)"
    (cd / && runuser -u postgres -- pgbouncer -d "$DIR/pgbouncer.ini") >&2 \
        || { tail -n 20 "$DIR/pgbouncer.log" >&2 2>/dev/null || true; die "pgbouncer did not start"; }
fi
wait_for 30 pooled_ready || {
    tail -n 20 "$DIR/pgbouncer.log" >&2 2>/dev/null || true
    die "cannot log in as $NAME through PgBouncer at $HOST:$PORT (is PostgreSQL up on $SERVER_PORT?)"
}
log "PgBouncer is up at $HOST:$PORT in front of port $SERVER_PORT"
echo "$URL"

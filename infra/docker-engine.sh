#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; install docker.io and start
# dockerd in the background if needed (root only). Idempotent.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG="$CM_INFRA_DIR/dockerd.log"
PIDFILE=${CM_DOCKERD_PIDFILE:-/var/run/docker.pid}
WAIT=${CM_DOCKERD_WAIT:-60}   # seconds to wait for `docker info`

engine_up() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up; then
    log "Docker engine is up ($(docker info --format '{{.ServerVersion}}, {{.Driver}}' 2>/dev/null))"
    exit 0
fi

if ! is_root; then
    if command -v docker >/dev/null 2>&1; then
        reason=$(docker info 2>&1 | tail -1 || true)
    else
        reason="docker CLI not installed"
    fi
    die "no usable Docker engine ($reason), and not root, so cannot install/start dockerd.
  Start one yourself (sudo $0) or add your user to the 'docker' group."
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    apt_install docker.io
    # The package's maintainer scripts may have started the engine already.
    if wait_for 5 engine_up; then
        log "Docker engine is up after installing docker.io"
        exit 0
    fi
fi

ensure_state_dir
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting"
else
    log "starting dockerd in the background (log: $LOG)"
    # setsid + nohup: the daemon outlives this script and the CI step's shell.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi

if wait_for "$WAIT" engine_up; then
    log "Docker engine is up ($(docker info --format '{{.ServerVersion}}, {{.Driver}}' 2>/dev/null))"
    exit 0
fi

{
    echo "[docker-engine] ERROR: dockerd did not answer 'docker info' within $WAIT s."
    echo "[docker-engine] last lines of $LOG:"
    tail -n 30 "$LOG" 2>/dev/null | sed 's/^/    /'
    echo "[docker-engine] docker info says: $(docker info 2>&1 | tail -1 || true)"
} >&2
exit 1

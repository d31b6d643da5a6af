# shellcheck shell=bash
# Helpers shared by the infra/*.sh scripts (sourced, not executed).
# All diagnostics go to stderr so that scripts can keep stdout for their result.

CM_INFRA_DIR=${CM_INFRA_DIR:-/tmp/cm-infra}
CM_INFRA_NAME=${CM_INFRA_NAME:-$(basename "$0" .sh)}

log() { printf '[%s] %s\n' "$CM_INFRA_NAME" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$CM_INFRA_NAME" "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

ensure_state_dir() { mkdir -p "$CM_INFRA_DIR"; }

# Run apt-get non-interactively, waiting for the dpkg lock instead of failing.
_apt_get() {
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1 \
        apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# `apt-get update` at most once per $CM_INFRA_DIR (and again if older than 6 h),
# so that several scripts run in a row do not each refresh the package lists.
apt_update_once() {
    local stamp="$CM_INFRA_DIR/apt-update.stamp"
    if [ "${1:-}" != "--force" ] && [ -n "$(find "$stamp" -mmin -360 2>/dev/null)" ]; then
        return 0
    fi
    ensure_state_dir
    log "apt-get update"
    _apt_get update >&2 || die "apt-get update failed"
    touch "$stamp"
}

# apt_install PKG...: install Debian packages (root only). Output goes to stderr.
apt_install() {
    is_root || die "need root to apt-get install $*; install it by hand or run as root"
    apt_update_once
    log "apt-get install -y $*"
    if ! _apt_get install -y "$@" >&2; then
        log "install failed; refreshing package lists and retrying once"
        apt_update_once --force
        _apt_get install -y "$@" >&2 || die "apt-get install $* failed"
    fi
}

# wait_for SECONDS CMD...: poll CMD every second until it succeeds; 1 on timeout.
wait_for() {
    local timeout=$1 i
    shift
    for ((i = 0; i < timeout; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    "$@" >/dev/null 2>&1
}

# find_cpython X.Y: print the path of a CPython X.Y: pythonX.Y on PATH, else pyenv's
# ($PYENV_ROOT or ~/.pyenv, then /root/.pyenv). Debian 12 packages only 3.11 and PyPI ships no
# interpreters (uv downloads its own from elsewhere), so without pyenv there may be none: 1 then.
find_cpython() {
    local version=$1 candidate
    for candidate in "$(command -v "python$version" 2>/dev/null)" \
        "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/"python$version" \
        /root/.pyenv/versions/"$version".*/bin/"python$version"; do
        if [ -x "$candidate" ] && "$candidate" -c \
            "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$version')" 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

#!/usr/bin/env bash
# Create/refresh the project virtualenv .venv (Python 3.11+) with
# `pip install -e '.[dev]' "$CM_DJANGO"`. Idempotent and quick when nothing changed:
# the install is redone only when pyproject.toml, the interpreter, the Django spec, the
# purpose or this script change (their hash is stored in VENV/.cm-infra-stamp).
# CM_PYTHON=/path/to/python overrides the interpreter choice; CM_VENV=.venv-x builds
# another venv; CM_DJANGO (default 'Django>=5.2,<5.3', the LTS) picks the Django.
# CM_VENV_PURPOSE=demo (`make demo`) installs only the runtime extras, `.[demo]`; a venv
# already made for the tests (the default purpose, `dev`) has them and is left as it is.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
VENV="$REPO/${CM_VENV:-.venv}"
DJANGO_SPEC=${CM_DJANGO:-Django>=5.2,<5.3}
PURPOSE=${CM_VENV_PURPOSE:-dev}
case "$PURPOSE" in
    dev | demo) ;;
    *) die "CM_VENV_PURPOSE must be dev or demo, not '$PURPOSE'" ;;
esac
STAMP="$VENV/.cm-infra-stamp"
cd "$REPO"
[ -f pyproject.toml ] || die "no pyproject.toml in $REPO"

py_ok() {  # py_ok PYTHON: is it CPython >= 3.11?
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local c
    for c in ${CM_PYTHON:-} python3.11 python3 /usr/bin/python3.11 /usr/bin/python3; do
        if command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# Serialise concurrent runs (e.g. `make test` and `make demo` started together).
ensure_state_dir
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CM_INFRA_DIR/venv-$(printf '%s' "$REPO" | cksum | cut -d' ' -f1).lock"
    flock 9
fi

# stamp PURPOSE: the hash of what a venv made for PURPOSE was made from.
stamp() {
    { cat pyproject.toml "$SELF"; "$VENV/bin/python" -VV; echo "$DJANGO_SPEC $1"; } \
        | sha256sum | cut -d' ' -f1
}

# Fast path: a working venv whose stamp matches (a dev venv serves the demo too).
if [ -x "$VENV/bin/python" ] && py_ok "$VENV/bin/python"; then
    have=$(cat "$STAMP" 2>/dev/null || true)
    if [ "$have" = "$(stamp "$PURPOSE")" ] || [ "$have" = "$(stamp dev)" ]; then
        log "$VENV is up to date ($("$VENV/bin/python" -V))"
        exit 0
    fi
fi

if [ ! -x "$VENV/bin/python" ] || ! py_ok "$VENV/bin/python" \
        || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    PY=$(find_python) || {
        apt_install python3 python3-venv python3-pip
        PY=$(find_python) || die "no Python >= 3.11 found (tried ${CM_PYTHON:-} python3.11 python3)"
    }
    # Debian's interpreter needs python3-venv for ensurepip.
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    log "creating $VENV with $PY ($("$PY" -V 2>&1))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "$PY -m venv failed"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q --upgrade pip >&2
fi

log "pip install -e '.[$PURPOSE]' '$DJANGO_SPEC' into $VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
    -e ".[$PURPOSE]" "$DJANGO_SPEC" >&2 || die "pip install -e '.[$PURPOSE]' '$DJANGO_SPEC' failed"

stamp "$PURPOSE" >"$STAMP"
log "$VENV ready ($("$VENV/bin/python" -V), Django $("$VENV/bin/python" -m django --version))"

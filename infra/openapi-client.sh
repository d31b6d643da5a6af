#!/usr/bin/env bash
# Create/refresh .venv-openapi-client: openapi-python-client in a venv of its own, so that its
# dependencies (typer, ruff, jinja2, pydantic…) never mix with the test venv's. The test of the
# generated client (tests/test_api_client.py) runs it by path; the client it generates needs
# only httpx, attrs and python-dateutil, which the `dev` extra holds. Idempotent: reinstalled
# only when the pinned version or this script changes (stamp in VENV/.cm-infra-stamp).
# CM_OPENAPI_CLIENT_VENV=path overrides where the venv goes.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
VENV=${CM_OPENAPI_CLIENT_VENV:-$REPO/.venv-openapi-client}
SPEC='openapi-python-client==0.29.1'
STAMP="$VENV/.cm-infra-stamp"

want=$( { cat "$SELF"; echo "$SPEC"; } | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/openapi-python-client" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    log "$VENV is up to date ($SPEC)"
    exit 0
fi
PY=$(find_cpython 3.11 2>/dev/null || command -v python3) || die "no python3 found"
log "creating $VENV with $PY: $SPEC"
rm -rf "$VENV"
"$PY" -m venv "$VENV" || die "$PY -m venv failed (Debian: apt-get install python3-venv)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q "$SPEC" >&2 \
    || die "pip install $SPEC failed"
echo "$want" >"$STAMP"
log "$VENV ready: $("$VENV/bin/openapi-python-client" --version)"

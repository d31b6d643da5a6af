#!/usr/bin/env bash
# Build the Lambda bundle of a zappa stage, offline: `infra/lambda-bundle.sh [STAGE] [ZIP]`.
# Creates a runtime-only virtualenv build/lambda-venv-STAGE (the project's runtime extras for
# that stage + zappa; the project itself is packaged from this tree, not installed), collects
# the static files into staticfiles/, then runs `zappa package STAGE -o ZIP`. No AWS
# credentials are needed. The last stdout line is the zip's path (default build/lambda-STAGE.zip).
# Linux x86_64 only: zappa_settings.json turns off zappa's wheel downloads, so the venv's own
# manylinux wheels go into the zip as they are. The venv's interpreter is the stage's "runtime"
# (python3.13: pyenv's or one on PATH; CM_PYTHON overrides).
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAGE=${1:-aws}
OUT=$(realpath -m "${2:-$REPO/build/lambda-$STAGE.zip}")
ZAPPA_SPEC=${CM_ZAPPA_SPEC:-zappa==0.63.0}
VENV="$REPO/build/lambda-venv-$STAGE"
cd "$REPO"

case "$STAGE" in
    aws) EXTRAS=aws,postgres,functions ;;
    aws_cloudrun) EXTRAS=aws,gcp,postgres,functions ;;
    *) die "unknown stage '$STAGE' (zappa_settings.json has: aws, aws_cloudrun)" ;;
esac
[ "$(uname -sm)" = "Linux x86_64" ] || die "build on Linux x86_64 (the Lambda platform), not $(uname -sm)"

ensure_state_dir
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CM_INFRA_DIR/lambda-bundle-$(printf '%s' "$REPO" | cksum | cut -d' ' -f1).lock"
    flock 9
fi

RUNTIME=$(sed -n 's/^ *"runtime": "\(python3\.[0-9]*\)".*/\1/p' zappa_settings.json | head -1)
[ -n "$RUNTIME" ] || die "zappa_settings.json sets no \"runtime\""
PY=${CM_PYTHON:-$(find_cpython "${RUNTIME#python}")} \
    || die "no Python ${RUNTIME#python} found (the Lambda runtime is $RUNTIME): install it with pyenv or set CM_PYTHON"
"$PY" -c "import sys; sys.exit('python%d.%d' % sys.version_info[:2] != '$RUNTIME')" \
    || die "$PY is not $RUNTIME, the stage's Lambda runtime"
# Lambda's python3.12 and newer run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon Linux 2.
case "$RUNTIME" in
    python3.11) GLIBC=2.26 ;;
    *) GLIBC=2.34 ;;
esac
want=$( { cat pyproject.toml "${BASH_SOURCE[0]}"; echo "$EXTRAS $ZAPPA_SPEC"; "$PY" -VV; } \
    | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.cm-stamp" 2>/dev/null)" != "$want" ]; then
    log "creating $VENV with $("$PY" -V) and .[$EXTRAS] + $ZAPPA_SPEC"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install ".[$EXTRAS]" "$ZAPPA_SPEC" >&2 || die "pip install into $VENV failed"
    "${pip[@]}" uninstall -y container_manager >&2
    # pip, choosing for this machine, may take a wheel built for a newer glibc than Lambda's.
    # Replace those with a build for Lambda's glibc or older.
    newer=$("$VENV/bin/python" - "$GLIBC" <<'PY'
import importlib.metadata as md, re, sys
limit = tuple(int(n) for n in sys.argv[1].split("."))
for dist in md.distributions():
    tags = re.findall(r"^Tag: (\S+)", dist.read_text("WHEEL") or "", re.M)
    glibc = [re.search(r"manylinux_?(\d+)_(\d+)|manylinux(1|2010|2014)", t) for t in tags]
    if tags and not any(t.endswith("-any") for t in tags) and not any(
        m and (m.group(3) or (int(m.group(1)), int(m.group(2))) <= limit) for m in glibc
    ):
        print(f"{dist.metadata['Name']}=={dist.version}")
PY
)
    if [ -n "$newer" ]; then
        log "replacing wheels built for a glibc newer than Lambda's: $(echo "$newer" | tr '\n' ' ')"
        # shellcheck disable=SC2086 # one requirement per word
        "${pip[@]}" install --no-deps --upgrade --only-binary=:all: --implementation cp \
            --python-version "${RUNTIME#python}" --platform "manylinux_${GLIBC/./_}_x86_64" \
            --target "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
            $newer >&2 || die "no wheel for glibc $GLIBC or older for: $newer"
    fi
    rm -rf "$REPO/build/lib" "$REPO/build/bdist."*  # left by pip building the project
    echo "$want" >"$VENV/.cm-stamp"
fi

log "collectstatic into staticfiles/"
DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:///:memory: \
    "$VENV/bin/python" manage.py collectstatic --noinput --clear -v 0 >&2

log "zappa package $STAGE -o $OUT"
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/zappa" package "$STAGE" -o "$OUT" \
    --disable_progress >&2 || die "zappa package $STAGE failed"
# /var/task is read-only on Lambda: bytecode not in the zip is compiled again at every cold
# start, and zip timestamps make copied .pyc files stale. Compile every module into the zip,
# checked by hash only (unchecked: the sources never change inside a bundle).
log "precompiling the bundle's modules"
"$VENV/bin/python" - "$OUT" <<'PY' >&2
import shutil, subprocess, sys, tempfile, zipfile
from pathlib import Path

out = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "bundle"
    with zipfile.ZipFile(out) as archive:
        modes = {info.filename: info.external_attr for info in archive.infolist()}
        archive.extractall(root)
    for stale in root.rglob("__pycache__"):
        shutil.rmtree(stale)
    # In its own process: 3.13's worker processes start by importing __main__, here stdin.
    compile_all = [sys.executable, "-m", "compileall", "-qq", "-j", "0"]
    subprocess.run([*compile_all, "--invalidation-mode", "unchecked-hash", str(root)])
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo.from_file(path, name)
            info.external_attr = modes.get(name, 0o644 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
PY
log "built $OUT ($(du -h "$OUT" | cut -f1) zipped)"
echo "$OUT"

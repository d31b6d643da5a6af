#!/usr/bin/env bash
# Make sure the local image ${CM_PYTHON_IMAGE:-cm-python:latest} exists, runs
# Python and imports the project: the image the Django tasks tests run tasks in.
# Built without any registry: infra/python_rootfs.py tars the interpreter of
# ${CM_PYTHON:-.venv/bin/python} (its standard library and the shared libraries
# ldd names), the project's runtime distributions from that venv and the
# project's sources, and `docker import` makes the image. Idempotent: the
# image is labelled with a hash of its inputs and rebuilt only when they change.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${CM_PYTHON_IMAGE:-cm-python:latest}
PY=${CM_PYTHON:-$REPO/.venv/bin/python}
cd "$REPO"

[ -x "$PY" ] || die "no interpreter at $PY; run infra/venv.sh first (or set CM_PYTHON)"
docker info >/dev/null 2>&1 || die "no Docker engine reachable; run infra/docker-engine.sh first"

# The tests' settings are the functions project's, which needs its extra's distributions
# (`functions` in pyproject.toml) in the image too. The backport goes in when the venv has it
# (Django 5.2); Django 6 has django.tasks.
extras=(--extra dj-database-url --extra whitenoise)
if "$PY" -c 'import django, sys; sys.exit(django.VERSION >= (6, 0))' 2>/dev/null; then
    extras+=(--extra django-tasks)
fi

# What goes in (names), the project's file contents and the build scripts decide the label;
# compiled modules are left out of it: they follow from the sources.
listing=$("$PY" infra/python_rootfs.py --list "${extras[@]}")
inputs=$( {
    "$PY" -VV
    printf '%s\n' "$listing" | cut -f1 | grep -v '\.pyc$'
    printf '%s\n' "$listing" | awk -F'\t' '$1 ~ /^app\// && $1 !~ /\.pyc$/ {print $2}' \
        | xargs sha256sum | cut -c1-64
    sha256sum "${BASH_SOURCE[0]}" infra/python_rootfs.py | cut -c1-64
} | sha256sum | cut -c1-16)

image_works() {
    [ "$(docker run --rm "$IMAGE" python -c 'import django, container_manager; print("ok")' 2>/dev/null)" = ok ]
}

old_id=
if old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null); then
    label=$(docker image inspect --format '{{index .Config.Labels "cm.inputs"}}' "$IMAGE")
    if [ "$label" = "$inputs" ] && image_works; then
        log "image $IMAGE is up to date (inputs $inputs) and runs Python"
        exit 0
    fi
    log "image $IMAGE is out of date (inputs ${label:-none}, now $inputs); rebuilding"
fi

log "importing $IMAGE: $("$PY" -V), $("$PY" -c 'import django; print("Django", django.__version__)')"
"$PY" infra/python_rootfs.py "${extras[@]}" | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV PYTHONPATH=/app:/opt/cm/site-packages' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'WORKDIR /app' \
    --change "LABEL cm.inputs=$inputs" \
    --change 'CMD ["python"]' \
    - "$IMAGE" >/dev/null

image_works || die "built $IMAGE but it cannot run 'python -c \"import django, container_manager\"'"
log "image $IMAGE built and verified ($(docker image inspect --format '{{.Size}}' "$IMAGE") bytes)"
[ -z "$old_id" ] || [ "$old_id" = "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ] \
    || docker rmi "$old_id" >/dev/null 2>&1 || true

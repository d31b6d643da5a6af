#!/usr/bin/env bash
# Run Django's own tests/tasks suite against ContainerTaskBackend (tests/django_tasks_suite.py)
# in ${CM_VENV:-.venv-dj61}. The suite comes from the sdist of the Django installed there,
# fetched with `pip download` (kept in $CM_INFRA_DIR/django-sdist) and extracted to a temporary
# directory: nothing of it enters the repository. Prints Django's runner output and a summary
# line (passed / skipped by name / failed); exits non-zero when a test fails.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$REPO/${CM_VENV:-.venv-dj61}/bin/python"
CACHE="$CM_INFRA_DIR/django-sdist"

[ -x "$PY" ] || die "no interpreter at $PY; create the venv with infra/venv.sh (CM_VENV, CM_DJANGO)"
VERSION=$("$PY" -c 'import django; print(django.__version__)')
"$PY" -c 'import django, sys; sys.exit(django.VERSION < (6, 0))' \
    || die "Django $VERSION has no django.tasks; the suite needs Django 6 or later"

# The sdist of that version, downloaded once; into a temporary directory first, so that an
# interrupted download never leaves a partial archive in the cache.
sdist() {
    local found
    found=$(find "$CACHE" -maxdepth 1 -iname "django-$VERSION.tar.gz" 2>/dev/null | head -1)
    if [ -z "$found" ]; then
        ensure_state_dir
        mkdir -p "$CACHE"
        local download
        download=$(mktemp -d "$CACHE/download.XXXXXX")
        log "pip download --no-binary :all: Django==$VERSION"
        "$PY" -m pip download --quiet --no-deps --no-binary :all: "Django==$VERSION" \
            -d "$download" >&2 || { rm -rf "$download"; die "pip download Django==$VERSION failed"; }
        found=$(find "$download" -maxdepth 1 -iname "django-$VERSION.tar.gz" | head -1)
        [ -n "$found" ] || { rm -rf "$download"; die "pip download left no django-$VERSION.tar.gz"; }
        mv "$found" "$CACHE/" && rm -rf "$download"
        found="$CACHE/$(basename "$found")"
    fi
    echo "$found"
}

ARCHIVE=$(sdist)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$ARCHIVE" -C "$WORK" --strip-components=1 --wildcards '*/tests/tasks/*'
[ -d "$WORK/tests/tasks" ] || die "$ARCHIVE has no tests/tasks"
log "Django $VERSION tests/tasks from $(basename "$ARCHIVE") against ContainerTaskBackend"
cd "$REPO"
# Its settings name an in-memory SQLite database of their own: DATABASE_URL plays no part.
env -u DATABASE_URL "$PY" -m tests.django_tasks_suite "$WORK/tests"

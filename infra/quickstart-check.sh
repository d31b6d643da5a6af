#!/usr/bin/env bash
# docs/quickstart.md followed as a new user would, on SQLite with the local Docker engine:
# builds the wheel of this repository, makes a fresh venv (Python 3.13, else 3.12) with the
# wheel's [docker] extra and Django 6.1, then applies exactly the blocks the page marks
# (infra/quickstart_blocks.py): startproject, settings, urls, migrate, runserver and
# process_container_jobs side by side, a job from Python, a job over the API, the task image
# (build_task_image) and a django.tasks task. Fails unless all three complete within
# CM_QUICKSTART_TIMEOUT (120 s), unless `manage.py check` is silent and if either process
# printed "database is locked". What it does that the page leaves to the user: 127.0.0.1:8000
# becomes a free port, and the page's busybox:1.37 is tagged from ${CM_TEST_IMAGE:-cm-busybox:latest}
# (nothing is pulled). Needs the engine and the test image (infra/docker-engine.sh,
# infra/test-image.sh). Keeps its directory on failure.
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAGE=$REPO/docs/quickstart.md
JOB_IMAGE=busybox:1.37
TASK_IMAGE=mysite-tasks:latest
TIMEOUT=${CM_QUICKSTART_TIMEOUT:-120}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cm-quickstart.XXXXXX")
PROJECT=$WORK/project
VENV=$WORK/venv
PIDS=()

for needed in "$JOB_IMAGE" "$TASK_IMAGE" "127.0.0.1:8000"; do
    grep -qF "$needed" "$PAGE" || die "docs/quickstart.md no longer names $needed; update $0"
done

finish() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    docker rmi "$TASK_IMAGE" >/dev/null 2>&1 || true
    if [ "$rc" -eq 0 ]; then
        rm -rf "$WORK"
    else
        for log in "$WORK"/*.log; do
            [ -f "$log" ] && { echo "---- $log (last 40 lines)"; tail -n 40 "$log"; } >&2
        done
        log "FAILED; kept $WORK"
    fi
}
trap finish EXIT

PY=$(find_cpython 3.13 || find_cpython 3.12) \
    || die "no Python 3.13 or 3.12 (Django 6.1 needs 3.12+); install one with pyenv"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "Python $("$PY" -V 2>&1 | cut -d' ' -f2), port $PORT, in $WORK"

log "building the wheel of $REPO"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$REPO" 2>>"$WORK/build.log" >&2
WHEEL=$(ls "$WORK"/dist/container_manager-*.whl)
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "$WHEEL[docker]" 'Django>=6.1,<6.2' 2>>"$WORK/build.log" >&2
log "installed: $("$VENV/bin/pip" list --format=freeze 2>/dev/null | tr '\n' ' ')"

docker image inspect "$JOB_IMAGE" >/dev/null 2>&1 \
    || docker tag "${CM_TEST_IMAGE:-cm-busybox:latest}" "$JOB_IMAGE"

"$VENV/bin/python" "$REPO/infra/quickstart_blocks.py" "$PAGE" "$WORK/blocks"
mkdir -p "$PROJECT"
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV=$VENV
while IFS=$'\t' read -r number action arg; do
    block=$WORK/blocks/$number
    sed -i "s/127\.0\.0\.1:8000/127.0.0.1:$PORT/g" "$block"
    log "block $number: $action $arg"
    case $action in
        append) printf '\n' >>"$PROJECT/$arg" && cat "$block" >>"$PROJECT/$arg" ;;
        create) cp "$block" "$PROJECT/$arg" ;;
        run)
            (cd "$PROJECT" && bash -euo pipefail "$block") >>"$WORK/blocks.log" 2>&1 \
                || die "block $number (run) failed; see $WORK/blocks.log"
            ;;
        background)
            (cd "$PROJECT" && exec setsid bash "$block") >"$WORK/$arg.log" 2>&1 &
            PIDS+=($!)
            ;;
    esac
done <"$WORK/blocks/manifest"
[ ${#PIDS[@]} -eq 2 ] || die "the page should start 2 processes, it started ${#PIDS[@]}"

# The page's settings must leave nothing for the system checks to say (W040, E040, E041...).
(cd "$PROJECT" && python manage.py check --database default --fail-level WARNING) >&2 \
    || die "manage.py check --fail-level WARNING fails with the page's settings"

log "waiting up to ${TIMEOUT}s for the jobs to finish"
report=$WORK/jobs.txt
finished() {
    sqlite3_query="SELECT name, status FROM container_manager_containerjob ORDER BY created_at"
    "$VENV/bin/python" -c "import sqlite3, sys
rows = sqlite3.connect('file:$PROJECT/db.sqlite3?mode=ro', uri=True).execute('$sqlite3_query').fetchall()
print('\n'.join(f'{n}\t{s}' for n, s in rows))
sys.exit(len(rows) < 3 or any(s in {'pending', 'launching', 'running'} for _, s in rows))" >"$report"
}
wait_for "$TIMEOUT" finished || { cat "$report" >&2; die "jobs not finished after ${TIMEOUT}s"; }
cat "$report" >&2
if awk -F'\t' '$2 != "completed"' "$report" | grep -q .; then die "a job did not complete"; fi
(cd "$PROJECT" && python manage.py shell -c '
from container_manager.models import ContainerJob
from mysite.tasks import add
job = ContainerJob.objects.exclude(name__in=["first-job", "api-job"]).get()
result = add.get_result(str(job.id))
assert result.return_value == 5, (result.status, result.errors)
print("task", job.id, result.status, result.return_value)') >&2
for name in web worker; do
    if grep -i "database is locked" "$WORK/$name.log" >&2; then
        die "$name printed 'database is locked'"
    fi
done
log "quickstart ok: 2 jobs and 1 task completed, no 'database is locked' in web or worker"

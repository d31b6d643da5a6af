#!/usr/bin/env bash
# Create the two benchmark virtualenvs, apart from the project's .venv:
#   .venv-bench  tqdm + matplotlib + py-spy, and the project's .venv packages through a .pth file
#   .venv-peer   django-container-manager==1.0.14 + docker (its import name is ours too)
#   benchmarks/.venv-tasks  django-tasks-db (+ the django-tasks backport) for tasks_db.py
# Idempotent: each venv is rebuilt only when missing or broken.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
log() { echo "benchmarks/setup.sh: $*" >&2; }

[ -x .venv/bin/python ] || bash infra/venv.sh
PY=.venv/bin/python
main_site=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

if ! .venv-bench/bin/python -c 'import tqdm, matplotlib, django, container_manager' 2>/dev/null; then
    log "creating .venv-bench (tqdm, matplotlib; project packages from .venv)"
    "$(readlink -f "$PY")" -m venv --clear .venv-bench
    .venv-bench/bin/pip install -q --disable-pip-version-check 'tqdm>=4.66' 'matplotlib>=3.8' py-spy
    bench_site=$(.venv-bench/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # Last on sys.path: the bench venv's own packages win, the project's come from .venv.
    echo "$main_site" >"$bench_site/zz-project-venv.pth"
fi

if ! .venv-peer/bin/python -c 'import container_manager, docker, django, tqdm' 2>/dev/null; then
    log "creating .venv-peer (django-container-manager==1.0.14)"
    "$(readlink -f "$PY")" -m venv --clear .venv-peer
    .venv-peer/bin/pip install -q --disable-pip-version-check \
        'django-container-manager==1.0.14' docker 'psycopg[binary]' 'tqdm>=4.66'
fi
if ! benchmarks/.venv-tasks/bin/python -c 'import django_tasks_db, psycopg' 2>/dev/null; then
    log "creating benchmarks/.venv-tasks (django-tasks-db, the comparison's worker)"
    "$(readlink -f "$PY")" -m venv --clear benchmarks/.venv-tasks
    benchmarks/.venv-tasks/bin/pip install -q --disable-pip-version-check \
        'django-tasks-db[compat]==0.13.0' 'Django>=5.2,<6' 'psycopg[binary]'
fi
log "ready: .venv-bench/bin/python benchmarks/run.py"

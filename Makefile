# Local entry points; see infra/README.md. Recipes are plain /bin/sh.
# VENV=.venv-x (with CM_PYTHON, CM_DJANGO in the environment) tests in another venv.
VENV ?= .venv
PYTHON = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test services lint venv demo-venv bench

# The tests' venv: the app with every extra and the test tools.
venv:
	CM_VENV=$(VENV) bash infra/venv.sh

# The demo's: only the runtime extras (Docker, the functions project); a test venv serves too.
demo-venv:
	CM_VENV=$(VENV) CM_VENV_PURPOSE=demo bash infra/venv.sh

demo: demo-venv
	@if bash infra/docker-engine.sh && bash infra/test-image.sh; then :; else \
	  echo "make demo: no Docker engine/test image; the demo falls back to the mock executor" >&2; fi
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py demo

test: venv
	$(PYTHON) -m pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit code 5)" >&2; fi; exit $$rc; }

services:
	bash infra/docker-engine.sh
	bash infra/test-image.sh
	bash infra/postgres.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: venv services
	bash benchmarks/setup.sh
	.venv-bench/bin/python benchmarks/run.py $(BENCH_ARGS)

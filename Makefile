# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   — run the pipeline once on the embedded default (emulator + local store)
#   make test   — lint, type-check and run every test
# Both install uv and the locked environment (uv.lock) themselves.

UV := python3 -m uv
RUN := $(UV) run --frozen

.PHONY: env demo test lint typecheck bench airflow airflow-down system-deps ci-contracts \
	ci-workflows pr-checks hooks

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as here) nothing ever caches bytecode, so
# without it every command compiles pandas, GX and Airflow again at start-up (a small transform:
# 2.3 s instead of 0.8 s; contracts lint 8.0 s instead of 3.4 s). The first sync compiles for
# about 20 s; later ones only what they install.
env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@# The Data Docs pages' scripts and styles, pinned in etl/docs_assets.lock.json: fetched once
	@# from the npm registry (hashes checked) into the cache, never at page-view time.
	@$(RUN) tweetpipe docs assets fetch >/dev/null

# Debian packages the tests need: headless Chromium for the browser checks; PostgreSQL and
# redis-server for the Celery profile (`tweetpipe airflow up --executor celery`). Only what is
# missing is installed.
SYSTEM_PACKAGES = $(if $(shell command -v chromium),,chromium) \
	$(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
	$(if $(shell command -v redis-server),,redis-server)

system-deps:
	@if [ -n "$(strip $(SYSTEM_PACKAGES))" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    $(strip $(SYSTEM_PACKAGES)) >/dev/null; fi

demo: env
	$(RUN) tweetpipe demo

lint: env
	$(RUN) ruff check etl dags tests bench
	$(RUN) ruff format --check etl dags tests bench
	$(RUN) mypy

# Contract review gates: contracts valid, suites in sync with them, CODEOWNERS naming each
# contract's team, and the last commit's contract changes classified (a breaking change needs a
# major version bump). A clone without a parent commit (single commit, shallow) has nothing to
# compare against, so the diff is skipped.
ci-contracts: env
	$(RUN) tweetpipe contracts lint
	$(RUN) tweetpipe expectations sync --check
	$(RUN) tweetpipe contracts codeowners --check
	@if git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null 2>&1; then \
	  $(RUN) tweetpipe contracts diff --base HEAD~1; \
	else echo "contracts diff: no previous commit to compare with, skipped"; fi

# The repository host's workflows: valid against the GitHub workflow schema, and no finding of
# medium severity or above from zizmor's security audit (offline: no audit that needs the host's
# API; no configuration file or ignore comment can silence a finding). The git hooks' config too.
ci-workflows: env
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows \
	  $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)
	$(RUN) zizmor --offline --no-config --no-ignores --min-severity medium --no-progress \
	  .github/workflows .pre-commit-config.yaml
	$(RUN) pre-commit validate-config .pre-commit-config.yaml

test: env system-deps lint ci-contracts ci-workflows
	$(RUN) pytest

# What the pull-request workflow's test job runs: `make test` without the end-to-end tests, which
# need Debian's Chromium (system-deps, as root) and start real Airflow services.
pr-checks: env lint ci-contracts ci-workflows
	$(RUN) pytest -m "not e2e"

# The git hooks of .pre-commit-config.yaml (contract lint, suites, version bump, CODEOWNERS, ruff).
hooks: env
	$(RUN) pre-commit install

bench: env
	$(RUN) python bench/run.py

# A local Airflow 3 (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite) on
# 127.0.0.1:8080 with this repo's dags/, the X API emulator and a local store under airflow-local/.
airflow: env
	$(RUN) tweetpipe airflow up

airflow-down: env
	$(RUN) tweetpipe airflow down

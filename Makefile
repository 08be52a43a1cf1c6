# Two commands for a fresh machine: `make run` (serve a model) and `make test` (run the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= artifacts
PORT ?= 8000
HOST ?= 0.0.0.0

.PHONY: setup run test test-stack docker-engine lint redis-server promtool demo-model bench-epoch clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml; constraints.txt pins everything else it pulls in.
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,report]'
	touch $@

setup: $(VENV)/.installed

# $(call apt_install,COMMAND,PACKAGE,ELSE): where COMMAND is missing, install PACKAGE with apt-get as root
# (updating the package lists only if the first try fails); run ELSE when not root.
define apt_install
	@command -v $(1) >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -q --no-install-recommends $(2) >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(2) >/dev/null; }; \
		else $(3); fi; }
endef

# The integration tests start their own redis-server on a free port; install it where it is missing.
redis-server:
	$(call apt_install,redis-server,redis-server,echo "redis-server is missing: install it (sudo apt-get install redis-server)"; exit 1)

# The deploy tests check the Prometheus config and alert rules with promtool (Debian's prometheus package ships it).
promtool:
	$(call apt_install,promtool,prometheus,echo "promtool is missing: the deploy test that needs it is skipped (sudo apt-get install prometheus)")

# A small model on synthetic data where the store has no CURRENT version yet (`elcrec bootstrap`: the same
# step as the compose stack's init service).
demo-model: setup
	$(BIN)/elcrec bootstrap --artifacts $(STORE)

run: demo-model
	$(BIN)/elcrec serve --artifacts $(STORE) --host $(HOST) --port $(PORT)

test: setup redis-server promtool
	$(BIN)/pytest -q -ra

# The compose stack for real (tests/stack/test_stack.py): a Docker engine (Debian's docker.io, started by hand where
# none runs) builds the image, brings up the stack and drives it over HTTP, then removes it, volumes included.
docker-engine:
	$(call apt_install,dockerd,docker.io,echo "dockerd is missing: install Docker (sudo apt-get install docker.io)"; exit 1)
	$(call apt_install,debootstrap,debootstrap,echo "debootstrap is missing: needed only where Docker Hub cannot be reached")
	@bash tests/stack/engine.sh

test-stack: setup docker-engine
	ELCREC_STACK_TEST=1 $(BIN)/pytest -q -s -ra -p no:cacheprovider --timeout 3000 tests/stack

lint: setup
	$(BIN)/ruff check elcrec model training service bench tests
	@rm -rf .typecheck && mkdir -p .typecheck/elcrec && ln -s $(CURDIR)/elcrec/*.py .typecheck/elcrec/ && \
		for layer in model training service; do ln -s $(CURDIR)/$$layer .typecheck/elcrec/$$layer; done
	$(BIN)/mypy

bench-epoch: setup
	$(BIN)/python -m bench.epoch_speed --data ../shared/data/Beauty.txt

clean:
	rm -rf $(VENV) .pytest_cache

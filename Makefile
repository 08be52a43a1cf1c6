# Two commands for a fresh machine: `make run` (serve a model) and `make test` (run the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= artifacts
PORT ?= 8000
HOST ?= 0.0.0.0

.PHONY: setup run test lint redis-server promtool demo-model bench-epoch clean

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

# A small model on synthetic data, built only when the store has no CURRENT version yet.
demo-model: setup
	@if [ ! -f $(STORE)/CURRENT ]; then \
		echo "no model in $(STORE): training a small demo model on synthetic data"; \
		$(BIN)/elcrec data synthetic --out $(STORE)/demo/synthetic.txt --users 2000 --items 400 --intents 8 && \
		$(BIN)/elcrec train --data $(STORE)/demo/synthetic.txt --out $(STORE) --epochs 10 --layers 1 --intents 8 \
			--hidden 32 --dropout 0.1 --lr 0.003 --batch-size 64 --trade-off 0.1 --prototype shift --no-progress; \
	fi

run: demo-model
	$(BIN)/elcrec serve --artifacts $(STORE) --host $(HOST) --port $(PORT)

test: setup redis-server promtool
	$(BIN)/pytest -q -ra

lint: setup
	$(BIN)/ruff check elcrec model training service bench tests
	$(BIN)/mypy

bench-epoch: setup
	$(BIN)/python -m bench.epoch_speed --data ../shared/data/Beauty.txt

clean:
	rm -rf $(VENV) .pytest_cache

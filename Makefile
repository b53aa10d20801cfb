# Neural Networks, Tested: every command a reader or CI needs.
#   make book       build the HTML book (creates .venv on first use)
#   make test       everything CI checks: lint, pairing, unit tests + nbval, strict book build
#   make notebooks  regenerate book/*.ipynb from nbsrc/*.py and execute them in place
#   make pretrain   re-train the backbones chapter 9 ships (companion/weights/, ~1 minute)
#                   (one chapter: make notebooks CHAPTERS=01_perceptron)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS ?= $(basename $(notdir $(wildcard nbsrc/*.py)))
BOOK_HTML := _build/html/index.html
PORT ?= 8000
THREAD_ARGS ?=
DEVICE_ARGS ?=
# One BLAS/OpenMP thread per process: the small models of the book run faster that way, two
# pytest workers do not fight over two cores, and printed numbers do not depend on the core count.
# The same arithmetic on every x86-64 CPU: ATen's and oneDNN's kernels are capped at AVX2, and
# MKL runs its COMPATIBLE branch (Conditional Numerical Reproducibility), which gives the same
# bits on Intel and AMD processors. Without it an Intel machine and an AMD one differ in the
# last digits of a matrix product, and after thousands of training steps in printed numbers
# (chapter 3's validation loss: 0.0614 on an Intel Xeon, 0.0609 on an AMD EPYC).
# It is not enough for every kernel: chapter 5's CNN, trained with this environment on an
# Intel Xeon and on an AMD EPYC, ends with other weights (the same accuracy), so chapter 8
# loads the trained models it explains (companion/weights) instead of training them again.
DETERMINISTIC_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=AVX2

.PHONY: help setup book serve test lint check-pairing unit build notebooks cpu-check thread-check \
	device-check pretrain bench clean

help:
	@echo "make book | serve | test | notebooks | cpu-check | thread-check | colab-check | check-html | pretrain | bench | setup | clean  (see README.md)"

## setup: create .venv and install the pinned environment; a no-op once done
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	@touch $@

## book: build the HTML book from the committed, executed notebooks
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/$(BOOK_HTML)"

serve: book
	@echo "Serving on http://localhost:$(PORT)/ (Ctrl-C stops)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

## test: what CI runs; stops at the first red step
test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory check-pairing
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory build
	@echo "make test: all checks passed"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every book/NAME.ipynb must be what `jupytext --update` makes of nbsrc/NAME.py. File times
# cannot tell (a git clone scrambles them), so regenerate and compare; the committed notebook
# is restored afterwards, so local edits are never lost.
check-pairing: setup
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; status=0; \
	for src in nbsrc/*.py; do \
	  name=$$(basename "$$src" .py); nb="book/$$name.ipynb"; \
	  if [ ! -f "$$nb" ]; then echo "PAIRING: $$nb is missing: run make notebooks"; status=1; continue; fi; \
	  cp "$$nb" "$$tmp/$$name.ipynb"; \
	  $(BIN)/jupytext -q --to ipynb --update -o "$$nb" "$$src"; \
	  if ! cmp -s "$$nb" "$$tmp/$$name.ipynb"; then \
	    echo "PAIRING: $$nb is out of date with $$src: run make notebooks and commit both"; \
	    diff -u "$$tmp/$$name.ipynb" "$$nb" | head -n 30 || true; status=1; \
	  fi; \
	  cp "$$tmp/$$name.ipynb" "$$nb"; \
	done; \
	for nb in book/*.ipynb; do \
	  [ -f "nbsrc/$$(basename "$$nb" .ipynb).py" ] || { echo "PAIRING: $$nb has no source in nbsrc/"; status=1; }; \
	done; \
	[ $$status -eq 0 ] && echo "pairing: every book/*.ipynb matches its nbsrc/*.py"; exit $$status

## unit: unit tests and strict nbval over every chapter, in one pytest run
unit: setup
	$(DETERMINISTIC_ENV) $(BIN)/pytest -n 2 --dist loadfile --nbval --nbval-sanitize-with nbval.cfg tests book

build: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

## notebooks: regenerate from nbsrc/, execute in place (keeps ids, no timestamps), then merge
## each cell's consecutive stdout chunks (their split depends on timing) so re-runs are byte-identical
notebooks: setup
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; total=0; \
	for name in $(CHAPTERS); do \
	  src="nbsrc/$$name.py"; nb="book/$$name.ipynb"; \
	  if [ -f "$$nb" ]; then update=--update; else update=; fi; \
	  $(BIN)/jupytext -q --to ipynb $$update -o "$$nb" "$$src"; \
	  start=$$(date +%s%N); \
	  if ! $(DETERMINISTIC_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	      --ExecutePreprocessor.record_timing=False "$$nb" 2>"$$log"; then \
	    cat "$$log"; echo "FAILED: $$nb"; exit 1; \
	  fi; \
	  ms=$$(( ($$(date +%s%N) - start) / 1000000 )); total=$$(( total + ms )); \
	  $(BIN)/jupyter nbconvert --to notebook --inplace --coalesce-streams "$$nb" 2>"$$log" \
	    || { cat "$$log"; exit 1; }; \
	  echo "$$nb executed in $$ms ms (budget 45000)"; \
	done; \
	echo "executed in $$total ms in all (budget for the whole book: 180000)"

## cpu-check: nbval again, as if on another processor with another core count: ATen's generic
## (non-vectorised) kernels, MKL's automatic branch and four threads round differently in the
## last bits, which after training is what another CPU does. A cell that fails here has an
## untagged output or an assert whose margin depends on the processor. (CI runs it after test.)
cpu-check: setup
	OMP_NUM_THREADS=4 MKL_NUM_THREADS=4 ATEN_CPU_CAPABILITY=default MKL_CBWR=AUTO \
	  $(BIN)/pytest -n 2 --dist loadfile --nbval --nbval-sanitize-with nbval.cfg book -p no:cacheprovider

## thread-check: execute every chapter with 1, 2 and 4 BLAS/OpenMP threads and compare *all*
## text outputs (tagged cells too) of 2 and 4 with 1's, all on this processor
thread-check: setup
	$(BIN)/python ci/thread_check.py $(THREAD_ARGS)

## device-check: every chapter with its first cell switched to use_device("cuda"), as a reader
## on a GPU runtime does: on the GPU where there is one, else on CUDA simulated on the CPU
## (ci/simulated_cuda.py: finds CPU tensors beside CUDA ones and .numpy() on CUDA tensors)
device-check: setup
	$(BIN)/python ci/device_check.py $(DEVICE_ARGS)

## pretrain: re-train chapter 9's backbones into companion/weights/ and record their SHA-256 and
## source accuracy in companion/weights/backbones.json, and chapter 8's trained CNN and MLP
## (companion/weights/models.json) (deterministic; commit the files)
pretrain: setup
	$(DETERMINISTIC_ENV) $(BIN)/python -c "from companion.transfer import main; main()" companion/weights
	$(DETERMINISTIC_ENV) $(BIN)/python -c "from companion.models import write_book_models as w; w('companion/weights')"

## bench: speed ratios against PyTorch, measured in the same run (one thread: stable ratios on a
## small shared machine; run `.venv/bin/python benchmarks/run.py` for the default thread count)
bench: setup
	$(DETERMINISTIC_ENV) $(BIN)/python benchmarks/run.py

include ci/colab-check.mk
include ci/check-html.mk

clean:
	rm -rf _build .jupyter_cache .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

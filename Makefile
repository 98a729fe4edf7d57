# All set-up happens here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch first, pinned to the CPU build on disk; a plain `torch` would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-fast model model-accurate static hs-fit hs-heads bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,bench,dask]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup                     ## score the shipped example file and print the summary
	mkdir -p out
	$(VENV)/bin/dualuse score examples/customs_lines.csv -o out/customs_lines.scored.csv

test: setup                     ## the whole test suite: fast tests and end-to-end tests
	$(PY) -m pytest

test-fast: setup                ## only the fast tests (stub encoder, tiny fixtures)
	$(PY) -m pytest -m "not e2e"

hs-fit: setup                   ## refit both hs_fit calibrations (dualuse/data/hs_fit*.json) after `make model` and `make hs-heads`
	$(PY) -m dualuse.hs_fit

hs-heads: setup                 ## refit the MiniLM heading classifier of the suggestions into models/hs_heads (~8 min)
	$(PY) -m dualuse.hs_heads

static: setup                   ## distil the static encoder from MiniLM into models/static
	$(PY) -m dualuse.distill --out models/static

model: setup                    ## retrain the shipped fast model (deterministic) into models/default
	$(VENV)/bin/dualuse train --out models/default

model-accurate: setup           ## retrain the shipped accurate model (MiniLM; ~30-60 min on 2 cores) into models/accurate
	$(VENV)/bin/dualuse train --encoder minilm --out models/accurate

bench: setup                    ## the benchmarks, full size; writes benchmarks/README.md and results/
	cd benchmarks && ../$(PY) model_eval.py
	cd benchmarks && ../$(PY) compare.py
	cd benchmarks && ../$(PY) hs_eval.py
	cd benchmarks && ../$(PY) scale.py --sizes 10k 100k 1m 5m --all-configs-at 10k 100k --models default accurate --cache-size 100k

bench-smoke: setup              ## the benchmarks at tiny sizes (CI runs this through the e2e tests)
	cd benchmarks && ../$(PY) model_eval.py --smoke
	cd benchmarks && ../$(PY) compare.py --smoke
	cd benchmarks && ../$(PY) hs_eval.py --smoke
	cd benchmarks && ../$(PY) scale.py --smoke

clean:
	rm -rf $(VENV) out build *.egg-info

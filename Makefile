# Two commands do everything on a fresh machine:
#   make book   set-up, then the whole book in the quick preset on simulated data
#   make test   set-up, then the linter (ruff) and all tests: the library, its doctests and
#               every chapter in the quick preset
# Also: make robustness (the bad-input, interruption and determinism suite), make bench.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= quick
DATA   ?= synthetic

.PHONY: setup book test robustness bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test,jax]"
	touch $@

book: setup
	$(VENV)/bin/weldlab book --preset $(PRESET) --data $(DATA)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

robustness: setup
	$(PY) -m pytest -m robustness

bench: setup
	$(PY) scripts/bench.py --training --book-run

clean:
	rm -rf _build

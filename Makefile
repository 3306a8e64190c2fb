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

.PHONY: setup browser book test robustness bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test,jax]"
	touch $@

# Headless Chromium for the offline check of the rendered pages (tests/test_chapters.py):
# installed from Debian's packages where this runs as root, else how to is printed.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "note: install Chromium (e.g. sudo apt-get install chromium) to run the offline page check"; fi; }

# In the quick preset no cell takes more than a few minutes: a cell that runs 15 minutes has hung,
# and the chapter is run again once (a safety net: the runner already re-reads a kernel reply that
# nbclient's wait missed, jupyter/nbclient#312). Other presets train in their cells and get no limit.
CELL_TIMEOUT := $(if $(filter quick,$(PRESET)),--cell-timeout 900)

book: setup
	$(VENV)/bin/weldlab book --preset $(PRESET) --data $(DATA) $(CELL_TIMEOUT)

test: setup browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

robustness: setup
	$(PY) -m pytest -m robustness

bench: setup
	$(PY) scripts/bench.py --training --book-run

clean:
	rm -rf _build

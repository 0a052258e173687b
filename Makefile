# Two entry points: `make demo` (the main job) and `make test` (the suite). Each builds its own .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WORK   ?= work

FINN_VENV := .venv/finn

.PHONY: demo test lint clean finn-env

$(VENV)/.stamp-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

# pynq 4.0 and FINN's driver pin numpy<2: the pynq extra lives in its own environment, installed once, inside
# .venv (one clean removes both). Its tests run the Brevitas networks the main suite built (.test-models/), so it
# needs no torch
$(FINN_VENV)/.stamp: pyproject.toml
	test -x $(FINN_VENV)/bin/python || $(PYTHON) -m venv $(FINN_VENV)
	$(FINN_VENV)/bin/python -m pip install -q --upgrade pip
	$(FINN_VENV)/bin/python -m pip install -q -e ".[pynq]" "pytest>=8"
	touch $@

finn-env: $(FINN_VENV)/.stamp

demo: $(VENV)/.stamp-openvino
	$(VENV)/bin/mlperf-ext demo --workdir $(WORK)

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .

# the report's browser test needs Debian's chromium: installed once when missing (without root it skips, saying why)
test: $(VENV)/.stamp-test $(FINN_VENV)/.stamp lint
	-sh scripts/ensure_chromium.sh
	$(PY) -m pytest -q
	$(FINN_VENV)/bin/python -m pytest -q tests/finn

clean:
	rm -rf $(VENV) $(WORK)

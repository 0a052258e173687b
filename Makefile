# Two entry points: `make demo` (the main job) and `make test` (the suite). Each builds its own .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WORK   ?= work

.PHONY: demo test lint clean

$(VENV)/.stamp-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.stamp-openvino
	$(VENV)/bin/mlperf-ext demo --workdir $(WORK)

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .

# the report's browser test needs Debian's chromium: installed once when missing (without root it skips, saying why)
test: $(VENV)/.stamp-test lint
	-sh scripts/ensure_chromium.sh
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(WORK)

# Two entry points (see README): `make demo` and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs
DEMO_QUERY ?= What do Lie groups and relativistic transformations relate to in quantum mechanics?

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/openbook index --out $(RUNS)/default-index --overwrite
	$(BIN)/openbook check src/openbook/resources/default-exam.csv
	$(BIN)/openbook search $(RUNS)/default-index "$(DEMO_QUERY)" -k 3

test: setup
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/index_bm25.py

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache

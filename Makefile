# Two entry points (see README): `make demo` and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs
MODEL ?= qwen2.5-coder-1.5b-instruct
EMBEDDER ?= all-minilm-l6-v2
EXAM ?= src/openbook/resources/default-exam.csv
DEMO_ARGS ?=  # e.g. DEMO_ARGS="--limit 5" for a quick look
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TORCH ?= torch==2.13.0  # pinned: this version resolves to the CPU build here (a bare `torch` pulls CUDA)

.PHONY: setup browser demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[llm,dense,faiss,dev]"
	$(MAKE) browser
	touch $@

browser:  # Debian's chromium and its driver, for the report's browser test (where missing)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; } || \
		echo "could not install chromium: the report's browser test will say it is skipped"

demo: setup
	$(BIN)/openbook models pull $(MODEL) $(EMBEDDER)
	$(BIN)/openbook index --out $(RUNS)/default-index --dense $(EMBEDDER)  # kept or resumed when run again
	$(BIN)/openbook eval $(EXAM) --index $(RUNS)/default-index --model $(MODEL) --out $(RUNS)/default-exam $(DEMO_ARGS)
	$(BIN)/openbook report $(RUNS)/default-exam --out $(RUNS)/default-exam/report.html

test: setup  # the gates first, each cheaper than the tests
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/index_bm25.py
	$(BIN)/python bench/dense_search.py
	$(BIN)/python bench/dense_lone_query.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/readers.py
	$(BIN)/python bench/transformers_backend.py

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache

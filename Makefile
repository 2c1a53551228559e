# Two entry points, both from a fresh clone:  `make demo`  and  `make test`.
# torch==2.13.0 is installed first: it is the CPU wheel on this kind of machine's disk, and any
# other torch would pull a multi-GB CUDA build.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	test -f outputs/warm-start/card.json || $(BIN)/ssl-fed pretrain-synthetic out=outputs/warm-start
	$(BIN)/ssl-fed simulate init=outputs/warm-start out=outputs/demo-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) outputs

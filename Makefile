# Two commands for a newcomer: `make demo` (a real grant against the built-in lab endpoint) and `make test`.
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/provisioner: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/provisioner
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(BIN)/provisioner
	$(BIN)/ruff check provisioner tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(BIN)/provisioner
	$(BIN)/python benchmarks/reapply.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

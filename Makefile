# Two commands for a newcomer: `make demo` (a real grant against the built-in lab endpoint) and `make test`.
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-exo clean kerberos-extra

# The lab endpoint is a distribution of its own (lab/): the product does not depend on it.
$(BIN)/provisioner: pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./lab
	touch $@

demo: $(BIN)/provisioner
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# The Kerberos extra builds against MIT Kerberos headers: installed when krb5-config is there (libkrb5-dev),
# otherwise the Kerberos tests skip and say how to enable them. Checked on every run (an import, no download).
kerberos-extra: $(BIN)/provisioner
	@$(BIN)/python -c 'import gssapi, krb5' 2>/dev/null || { \
	  if command -v krb5-config >/dev/null 2>&1; then \
	    $(BIN)/python -m pip install --quiet -e '.[test,kerberos]' \
	      || echo "warning: the Kerberos extra did not build: Kerberos tests will skip"; \
	  else \
	    echo "note: no krb5-config (libkrb5-dev): Kerberos tests will skip"; \
	  fi; }

test: $(BIN)/provisioner kerberos-extra
	$(BIN)/ruff check provisioner lab tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(BIN)/provisioner
	$(BIN)/python benchmarks/reapply.py

# The Exchange Online (REST) backend against the lab's EXO fake: requests per pair with and without $batch.
bench-exo: $(BIN)/provisioner
	$(BIN)/python benchmarks/exo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

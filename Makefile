# Two commands for a newcomer: `make demo` (a real grant against the built-in lab endpoint) and `make test`.
# Each creates its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test docs dist lint bench bench-scale bench-exo clean kerberos-extra

# The lab endpoint (lab/provisioner_lab) ships in the same wheel; its dependencies are the `lab` extra (the product
# needs psrpcore too, for its own PSRP client). `test` brings the lab, `docs` the documentation site's tools.
$(BIN)/provisioner: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes provisioner provisioner-lab 2>/dev/null || true  # the old names
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
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
	$(BIN)/python -m pytest --numprocesses auto --maxprocesses 4 --dist loadfile

# The documentation site (docs/ + mkdocs.yml) into site/; the CLI and configuration references are generated from
# the code at build time (docs/hooks/reference.py), so they cannot fall behind. --strict: a broken link fails.
docs: $(BIN)/provisioner
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The sdist and the wheel into dist/ (the commit is stamped into both by hatch_build.py).
dist: $(BIN)/provisioner
	$(BIN)/python -m pip install --quiet build
	rm -rf dist && $(BIN)/python -m build --outdir dist

bench: $(BIN)/provisioner
	$(BIN)/python benchmarks/reapply.py

# The no-op re-apply at 1,000 / 10,000 / 50,000 mailboxes x 2: client CPU, peak RSS, requests (several minutes).
bench-scale: $(BIN)/provisioner
	$(BIN)/python benchmarks/scale.py

# The Exchange Online (REST) backend against the lab's EXO fake: requests per pair with and without $batch.
bench-exo: $(BIN)/provisioner
	$(BIN)/python benchmarks/exo.py

clean:
	rm -rf $(VENV) site dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

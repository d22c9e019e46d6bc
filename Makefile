# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow test-all bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,docs]'
	touch $(STAMP)

# Each example's run folders go to examples/NAME/work/ (ignored by git) and its table to work/output.txt.
EXAMPLES := digits_transfer text_transfer clip_zeroshot rag_docs agents unlabelled_digits distill_digits

demo: install
	@mkdir -p $(foreach e,$(EXAMPLES),examples/$(e)/work)
	$(PY) examples/digits_transfer/run.py | tee examples/digits_transfer/work/output.txt
	$(PY) examples/text_transfer/run.py --keep examples/text_transfer/work | tee examples/text_transfer/work/output.txt
	$(PY) examples/clip_zeroshot/run.py | tee examples/clip_zeroshot/work/output.txt
	$(PY) examples/rag_docs/run.py --keep examples/rag_docs/work | tee examples/rag_docs/work/output.txt
	$(PY) examples/agents/run.py --keep examples/agents/work | tee examples/agents/work/output.txt
	$(PY) examples/unlabelled_digits/run.py --quick | tee examples/unlabelled_digits/work/output.txt
	$(PY) examples/distill_digits/run.py --quick | tee examples/distill_digits/work/output.txt
	@echo; echo "Where each result is (what it shows: docs/examples/NAME.md):"
	@for e in $(EXAMPLES); do printf '  %-18s examples/%s/work/output.txt, run folders beside it\n' $$e $$e; done

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

docs: install
	$(PY) -m mkdocs build --strict --quiet
	@echo "site/index.html: the documentation (mkdocs serve to browse it live)"

bench: install
	$(PY) benchmarks/finetune.py

clean:
	rm -rf $(VENV) runs build site *.egg-info

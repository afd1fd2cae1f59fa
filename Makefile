# mutoscope: two commands on a fresh clone. `make demo` and `make test` both set up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel of torch lies on this machine's disk; name it so pip never pulls a CUDA build.
WHEELS := $(wildcard /opt/wheels)
PIP_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: setup demo serve test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_LINKS) torch==2.13.0
	$(PY) -m pip install -q $(PIP_LINKS) -e '.[dev]'
	@bash scripts/system-deps.sh
	@touch $(STAMP)

demo: setup
	@mkdir -p out/demo
	$(VENV)/bin/mutoscope generate "a red ball bounces on a gray checkerboard" --seed 1 --out out/demo/red_ball.mp4
	$(VENV)/bin/mutoscope judge out/demo/red_ball.mp4 --prompt "a red ball bounces on a gray checkerboard"; [ $$? -le 1 ]  # 1: a claim failed
	$(VENV)/bin/mutoscope world sample --n 16 --out out/demo/world
	@echo "demo: out/demo/red_ball.mp4 (+ .png poster, .json record), judged above; world clips in out/demo/world/"

serve: setup
	$(VENV)/bin/mutoscope serve

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: setup
	$(PY) bench/world_throughput.py
	$(PY) bench/judge_validation.py --n 500

clean:
	rm -rf out .pytest_cache .ruff_cache

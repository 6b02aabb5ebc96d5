# time-hub: `make demo` (offline demo on ../shared) and `make test` each install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (on this project's machines it comes from local disk in seconds). On a GPU machine use
# e.g. `make setup TORCH=torch` for the default CUDA build.
TORCH ?= torch==2.13.0
DEMO_RUN ?= runs/demo-da

.PHONY: help setup demo test lint bench clean

help:
	@echo "make demo   the whole chain on ../shared: distill a Danish student from me5-small, select, fine-tune UD + NER,"
	@echo "            bench vs the teacher, write its model card (runs/demo-da/publish/time-da-demo/README.md)"
	@echo "make test   run the test suite (slow end-to-end tests included)"
	@echo "make lint   ruff check + format check"
	@echo "make bench  distillation-step benchmark (ours vs naive) -> benchmarks/results/"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/time-hub run recipes/demo/run-da.yaml --output_dir $(DEMO_RUN)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check time_hub tests benchmarks space
	$(BIN)/ruff format --check time_hub tests benchmarks space

bench: setup
	$(BIN)/python benchmarks/distill_step.py --json benchmarks/results/distill_step-cpu.json

clean:
	rm -rf $(VENV) runs

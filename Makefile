# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from nothing (torch pinned exactly by constraints.txt) and then runs.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# Where pip finds the pinned CPU build of torch when pip's own configuration has no wheelhouse holding it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# The stamp changes whenever pyproject.toml or constraints.txt does, so a changed dependency list re-installs.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
DEMO_OUT ?= runs/demo

.PHONY: venv test test-reliability test-slow test-gpu test-wheel demo bench rehearsal clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (jooci needs Python 3.11; set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	# torch first, on its own, so pip takes the exact CPU build (constraints.txt) and never a CUDA one.
	# A wheelhouse in pip's own config is tried first; PyPI has no +cpu build, so otherwise pip says so at
	# once and the CPU index (TORCH_INDEX) is asked.
	$(PY) -m pip install --quiet -c constraints.txt torch 2>/dev/null \
	  || $(PY) -m pip install --quiet -c constraints.txt --extra-index-url $(TORCH_INDEX) torch
	# every extra, so make test and make demo exercise synth, plots, faiss and tensorboard
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev,hf]"
	# s3prl only for its upstream interfaces (the Featurizer test); its own pins would replace torch.
	$(PY) -m pip install --quiet --no-deps "s3prl==0.4.18"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: venv
	$(PY) -m pytest -q

test-reliability: venv
	$(PY) -m pytest -q -m "slow and reliability"

test-slow: venv
	$(PY) -m pytest -q -m slow

# On a machine with a CUDA GPU (the pinned CPU torch has none: install a CUDA build of the same
# torch into the venv first, or run `python -m pytest -m gpu` under an environment that has one).
test-gpu: venv
	$(PY) -m pytest -q -m gpu

# Build the wheel, install it into a fresh venv (with constraints.txt) and run `jooci demo --help`
# and the tiny preset's pipeline from it, outside the checkout (a few minutes; .ci/run runs it).
test-wheel: venv
	TORCH_INDEX=$(TORCH_INDEX) $(PY) -m pytest -q -m wheel -s tests/test_wheel.py

demo: venv
	$(VENV)/bin/jooci demo --out $(DEMO_OUT)

# The benchmark runner (benchmarks/run.py): every speed figure against its peer, one JSON record per
# measurement in $(BENCH_OUT) and a table beside it (.md). CPU mode (< 5 min on 2 cores) on the project
# venv; `make bench MODE=gpu` on a CUDA machine runs under that machine's own python3/torch with jooci
# from src/ (its other dependencies installed there). BENCH_ARGS=--profile adds the profiles.
MODE ?= cpu
BENCH_OUT ?= runs/bench/bench-$(MODE).jsonl
BENCH_ARGS ?=
ifeq ($(MODE),gpu)
BENCH_PY ?= python3
BENCH_DEPS :=
else
BENCH_PY ?= $(PY)
BENCH_DEPS := venv
endif
bench: $(BENCH_DEPS)
	PYTHONPATH=$(CURDIR)/src$${PYTHONPATH:+:$$PYTHONPATH} $(BENCH_PY) benchmarks/run.py --mode $(MODE) --out $(BENCH_OUT) $(BENCH_ARGS)

# The real-format rehearsal (benchmarks/rehearsal.py): synth in the LibriSpeech/VoxCeleb1/IEMOCAP
# layouts -> prepare -> PRESET pretraining on 2 gloo ranks (targets on both, a few steps per phase)
# -> evaluate beside a random HF HubertModel of the preset's shape -> report; wall time and peak
# memory per stage in runs/rehearsal-$(PRESET)-$(HOURS)h/rehearsal.{json,md}. HOURS=1 with the base
# preset takes about two hours on 2 cores; PRESET=tiny is minutes per hour of audio.
HOURS ?= 1
PRESET ?= base
rehearsal: venv
	$(PY) benchmarks/rehearsal.py --hours $(HOURS) --preset $(PRESET) --out runs/rehearsal-$(PRESET)-$(HOURS)h

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

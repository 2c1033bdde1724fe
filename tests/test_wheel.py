"""The wheel as a pip user gets it: built from the checkout, installed into a fresh venv with
constraints.txt (the exact CPU torch), and run from a folder outside the checkout: help, the
tiny preset's pipeline, the shipped configs, the one-line messages and fallbacks for missing
extras, and (with the plots extra added) the demo at toy scale.

It takes minutes (installing torch into the venv dominates), so it is behind the ``wheel`` marker:
``make test-wheel`` runs it, and .ci/run runs that after ``make test``.
"""

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
STEPS = [f"schedule.{p}.steps=3" for p in ("content", "teacher", "phase1", "phase2")] + \
        [f"schedule.{p}.warmup_steps=1" for p in ("content", "teacher", "phase1", "phase2")] + \
        ["run.checkpoint_every=1000"]


def _run(cmd, cwd, env, timings=None, what=None, ok=True):
    t0 = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if timings is not None:
        timings[what or Path(str(cmd[0])).name] = round(time.perf_counter() - t0, 1)
    if ok:
        assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_runs_the_tiny_pipeline_outside_the_checkout(tmp_path):
    timings: dict[str, float] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}

    # 1. the wheel: code and the shipped presets, nothing of the checkout around them
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT],
         tmp_path, env, timings, "build the wheel")
    (wheel,) = dist.glob("jooci-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"jooci/configs/tiny.yaml", "jooci/configs/small.yaml", "jooci/configs/base.yaml"} <= set(names)
    assert "jooci/cli/__init__.py" in names and not any(n.startswith(("tests/", "experiments/")) for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist: torch")]
    assert requires == ["Requires-Dist: torch>=2.6"], requires  # a range: the exact pin is make's

    # 2. a fresh venv (no system site-packages), the wheel with the synth extra only, torch pinned
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env, timings, "create the venv")
    py, jooci = venv / "bin" / "python", venv / "bin" / "jooci"
    # pip's own configuration first (a wheelhouse holding the CPU torch); the CPU index only if that fails
    index: list[str] = []
    install = [py, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", f"jooci[synth] @ {wheel.as_uri()}"]
    if _run(install, tmp_path, env, timings, "pip install the wheel", ok=False).returncode != 0:
        assert os.environ.get("TORCH_INDEX"), "torch==2.13.0+cpu not found and TORCH_INDEX is not set"
        index = ["--extra-index-url", os.environ["TORCH_INDEX"]]
        _run([*install[:4], *index, *install[4:]], tmp_path, env, timings, "pip install the wheel (CPU index)")

    # 3. from a folder outside the checkout
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([py, "-c", "import jooci, torch; print(jooci.__file__); print(torch.__version__)"], work, env)
    installed, torch_version = where.stdout.split()
    assert Path(installed).is_relative_to(venv) and not Path(installed).is_relative_to(ROOT / "src")
    assert torch_version == "2.13.0+cpu"
    assert "--ablate" in _run([jooci, "demo", "--help"], work, env, timings, "jooci demo --help").stdout

    # the demo needs the plots extra, which this install lacks: one line naming it, before any work
    done = _run([jooci, "demo", "--out", "d", "--preset", "tiny"], work, env, ok=False)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "jooci demo: error: plotting needs matplotlib, which is not installed: pip install 'jooci[plots]'"]

    _run([jooci, "synth", "--out", "corpus", "--minutes", "1", "--speakers", "6", "--workers", "2"],
         work, env, timings, "jooci synth --minutes 1")
    done = _run([jooci, "pretrain", "--config", "tiny", "--out", "run", "--all", "data.corpus=corpus", *STEPS],
                work, env, timings, "jooci pretrain --config tiny --all")
    assert "model: run/final" in done.stdout
    # no faiss and no tensorboard installed: scikit-learn k-means and no events, each said once per use
    assert "pip install 'jooci[faiss]'" in done.stderr and "pip install 'jooci[tensorboard]'" in done.stderr
    for model in ("final", "baseline"):
        assert json.loads((work / "run" / model / "config.json").read_text())["model_type"]
    features = _run([py, "-c", "import torch, jooci\n"
                     "m = jooci.load('run/final').eval()\n"
                     "out = m.extract_features(torch.zeros(1, 16000))\n"
                     "print(len(out.hidden_states))"], work, env)
    assert int(features.stdout.strip()) > 1

    # 4. with the plots extra added, the demo runs from the installed package (toy scale)
    _run([py, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", *index, f"jooci[plots] @ {wheel.as_uri()}"],
         tmp_path, env, timings, "pip install the plots extra")
    _run([jooci, "demo", "--out", "demo", "--preset", "tiny", "--minutes", "2", "--speakers", "8", *STEPS],
         work, env, timings, "jooci demo --preset tiny (toy steps)")
    report = (work / "demo" / "report" / "report.md").read_text()
    assert report.startswith("# jooci demo") and (work / "demo" / "report" / "training_curves.png").is_file()
    print("\nwheel test timings (s):", json.dumps(timings))

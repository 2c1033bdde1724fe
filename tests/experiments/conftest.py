"""Shared pieces of the experiment scripts' smoke tests.

- ``load_script``: import an ``experiments/<topic>/<script>.py`` by path (topic folders are not
  packages);
- ``corpus``: one 1-minute JOOCI-synth corpus for the whole session;
- ``untrained_demo``: a folder laid out like a finished demo's (corpus, ``pretrain/{final,
  baseline, teacher/final}``) holding untrained tiny models, for the scripts that only read models;
- ``seed_folders``: four seed folders with nothing but evaluation results, for the scripts that
  only summarise them;
- ``tiny_demo``: a real ``jooci demo`` at the tiny preset (a minute and a half here), for the
  scripts that retrain phases; only ``slow`` tests use it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TASKS = ("pr", "asr", "sid", "asv", "er")
METRIC = {"pr": "per", "asr": "wer", "sid": "accuracy", "asv": "eer", "er": "accuracy"}
#: every phase of the tiny preset cut to two steps
STEPS = [f"schedule.{p}.steps=2" for p in ("content", "teacher", "phase1", "phase2")] + \
        [f"schedule.{p}.warmup_steps=1" for p in ("content", "teacher", "phase1", "phase2")]


def load_script(relative: str):
    """The module of ``experiments/<relative>`` (e.g. ``tools/variant_summary.py``)."""
    path = EXPERIMENTS / relative
    name = "experiments_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def finite(x) -> bool:
    """Every number in a JSON-like value is finite (None and strings are left alone)."""
    if isinstance(x, dict):
        return all(finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(finite(v) for v in x)
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return True
    return math.isfinite(x)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    from jooci.data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("experiments") / "corpus"
    return synthesize(out, SynthConfig(minutes=1.0, seed=0, speakers=8), workers=1, progress=False)


def write_synth_seed(folder: Path, seed: int) -> None:
    (folder / "corpus").mkdir(parents=True, exist_ok=True)
    (folder / "corpus" / "synth.json").write_text(json.dumps({"config": {"seed": seed}}))


@pytest.fixture(scope="session")
def untrained_demo(corpus, tmp_path_factory) -> Path:
    import torch

    from jooci.models import JOOCI, HuBERTBaseline
    from jooci.models.speaker import SpeakerModel, save_speaker_folder, speaker_config

    demo = tmp_path_factory.mktemp("untrained-demo")
    shutil.copytree(corpus, demo / "corpus")
    pre = demo / "pretrain"
    torch.manual_seed(0)
    JOOCI.from_preset("tiny").save_pretrained(pre / "final")
    HuBERTBaseline.from_preset("tiny").save_pretrained(pre / "baseline")
    save_speaker_folder(SpeakerModel(speaker_config("tiny")).eval(), pre / "teacher" / "final")
    return demo


def results_doc(name: str, values: dict[str, float], dev: dict[str, float]) -> dict:
    """A ``results.json`` as ``jooci evaluate`` writes it, reduced to what the summaries read."""
    return {"model": {"name": name},
            "tasks": {t: {"metric": METRIC[t], "value": values[t], "dev_value": dev[t], "extra": {}} for t in TASKS}}


@pytest.fixture
def seed_folders(tmp_path):
    """Four seed folders whose eval/ holds the baseline, JOOCI, the control and the variant ``jooci v``."""
    folders = []
    for seed in range(4):
        folder = tmp_path / f"seed-{seed}"
        write_synth_seed(folder, seed)
        base = {"pr": 46.0 + seed, "asr": 98.0, "sid": 79.0 + seed, "asv": 10.0, "er": 47.0 + seed}
        rows = {"fbank": base, "baseline": base,
                "jooci": dict(base, pr=base["pr"] - 2.5, er=base["er"] + 8 + seed),
                "jooci_untrained-other": dict(base, pr=base["pr"] - 3, er=base["er"] + 6),
                "jooci_v": dict(base, pr=base["pr"] - 3 - 0.1 * seed, asv=9.5 - 0.1 * seed)}
        for model, values in rows.items():
            d = folder / "eval" / model
            d.mkdir(parents=True)
            dev = {t: v - 1 for t, v in values.items()}
            (d / "results.json").write_text(json.dumps(results_doc(model, values, dev)))
        folders.append(folder)
    return folders


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    from jooci.demo import run_demo

    out = tmp_path_factory.mktemp("tiny-demo") / "demo"
    run_demo(out, preset="tiny", minutes=1.0, speakers=8, overrides=STEPS, device="cpu", threads=1)
    return out

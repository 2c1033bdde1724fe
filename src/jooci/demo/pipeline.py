"""``jooci demo``: the whole story on the embedded corpus, as one resumable run.

Stages (each reused when already finished, so a second run takes seconds)::

    1 corpus      JOOCI-synth (jooci synth)
    2 pretrain    targets -> Content iterations -> teacher -> phase 1 -> phase 2, and the
                  HuBERT-style baseline with the same number of Content updates (jooci pretrain --all)
    3 ablations   optional: JOOCI variants retrained from the shared Content model and teacher
    4 evaluate    fbank floor, baseline, JOOCI and the control on PR, ASR, SID, ASV, ER (jooci evaluate)
    5 speaker     each model's own embedding on the ASV trials, no trained head (jooci verify):
      check       the log-mel statistics, the RDINO teacher, every JOOCI's Other embedding
    6 report      DIR/report/report.md with tables, plots, training curves, timings, a verdict

It is formant synthesis, far from real speech: the numbers show whether the mechanism works in
a controlled setting, not what LibriSpeech or VoxCeleb would give.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from jooci.configio import replace as replace_config
from jooci.demo.checks import speaker_check, untrained_other_twin
from jooci.demo.common import ABLATIONS, CONTROL, CORPORA, TASKS, duration
from jooci.demo.report import write_demo_report

# Seconds per unit of work on the reference machine (a 2-core CPU, small preset with its log-mel
# frontend, 16 s batches, 60-minute corpus; from the demo's checkpoint times there): what the time
# estimate uses.
REFERENCE_SECONDS = {
    "step/content": 0.23, "step/teacher": 0.67, "step/phase1": 0.67, "step/phase2": 0.92,
    "targets/mfcc": 10.0, "targets/model": 28.0,  # per 60 minutes of audio
    # per 60 minutes of audio; a speaker-check source: cosine trials ~3 s + SID probe ~7 s
    "corpus": 8.0, "evaluate/model": 59.0, "verify/source": 10.0,
    "report": 3.0,
}


def estimate_seconds(cfg, minutes: float, ablations: int) -> dict[str, float]:
    """Each stage's expected wall time for a fresh run on the reference machine (2-core CPU)."""
    r, s = REFERENCE_SECONDS, cfg.schedule
    audio = minutes / 60.0
    # seconds per phase: steps x the reference step time x the phase's batch against the reference 16 s
    cost = {p: s.of(p).steps * r[f"step/{p}"] * s.batch_seconds(p, cfg.data) / 16.0
            for p in ("content", "teacher", "phase1", "phase2")}
    # the baseline's extra updates are Content steps as many as phase 2's, at the content batch
    baseline_extra = s.of("phase2").steps * r["step/content"] * s.batch_seconds("content", cfg.data) / 16.0
    joint = cost["phase1"] + cost["phase2"]
    teacher = 0.0 if cfg.run.teacher_init else cost["teacher"]  # an external teacher is not trained here
    pretrain = cost["content"] * s.content_iterations + baseline_extra + teacher + joint \
        + audio * (r["targets/mfcc"] + (s.content_iterations - 1) * r["targets/model"])
    out = {"corpus": audio * r["corpus"], "pretrain": pretrain}
    if ablations:
        out["ablations"] = ablations * joint
    out["evaluate"] = (4 + ablations) * audio * r["evaluate/model"]  # fbank, baseline, jooci, the control
    out["speaker check"] = (3 + 2 + ablations) * audio * r["verify/source"]
    out["report"] = r["report"]
    return {k: round(v, 1) for k, v in out.items()}


class Stages:
    """Prints one line per stage with its elapsed and estimated time, and keeps the timings for
    the report. Estimates are for a fresh stage on the reference machine; a finished stage is
    reused in about a second."""

    def __init__(self, out: Path, total: int, estimates: dict[str, float] | None = None):
        self.out, self.total, self.n = out, total, 0
        self.estimates = estimates or {}
        self.times: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._path = out / "stage_times.json"
        if self._path.exists():
            self.times = json.loads(self._path.read_text())

    def run(self, name: str, fn, *args, **kwargs):
        self.n += 1
        est = self.estimates.get(name)
        hint = f" (fresh: ~{duration(est)} on a 2-core CPU)" if est else ""
        print(f"\n== stage {self.n}/{self.total}: {name}{hint}", flush=True)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        dt = time.perf_counter() - t0
        # a reused stage takes ~0 s: keep the time it took when it really ran
        if name not in self.times or dt > 5:
            self.times[name] = round(dt, 1)
        self._path.write_text(json.dumps(self.times, indent=1))
        print(f"== {name}: {dt:.1f} s (demo so far: {duration(time.perf_counter() - self._t0)})", flush=True)
        return result


def corpus_config(corpus: str = "clean", seed: int = 0, minutes: float | None = None,
                  speakers: int | None = None):
    """The JOOCI-synth settings of the demo corpus ``corpus`` (:data:`CORPORA`), with ``minutes``
    and ``speakers`` replaced where given."""
    from jooci.data.synth import SynthConfig

    if corpus not in CORPORA:
        raise ValueError(f"unknown demo corpus {corpus!r}; choose from {', '.join(CORPORA)}")
    settings = dict(CORPORA[corpus], seed=seed)
    settings.update({k: v for k, v in (("minutes", minutes), ("speakers", speakers)) if v is not None})
    cfg = SynthConfig(**settings)
    cfg.validate()
    return cfg


def run_demo(out: str | os.PathLike = "runs/demo", preset: str = "small", minutes: float | None = None, seed: int = 0,
             ablate: list[str] | None = None, overrides: list[str] | None = None, speakers: int | None = None,
             device: str = "auto", threads: int | None = None, corpus_name: str = "clean") -> Path:
    """Run (or resume) the demo into ``out``; returns the report path.

    corpus_name: the demo corpus (:data:`jooci.demo.common.CORPORA`: "clean", the default, or
    "sessions"); minutes and speakers replace its settings where given.

    device: where pretraining and feature extraction run ("auto": a GPU if there is one, else the
    CPU). threads: torch threads for extraction and the evaluation heads (default 1, which is the
    fastest on the 2-core machine the demo is sized for; raise it on a many-core machine).
    """
    from jooci.data.synth import synthesize
    from jooci.extras import check
    from jooci.superb.runner import EvalConfig, evaluate
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase
    from jooci.train.pipeline import run_all, teacher_folder

    check("espeakng_loader", "matplotlib")  # the synth and plots extras, before hours of work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ablate = list(ablate or [])
    unknown = [a for a in ablate if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    synth = corpus_config(corpus_name, seed, minutes, speakers)
    minutes = synth.minutes
    t_start = time.perf_counter()
    corpus = out / "corpus"
    cfg = load_config(preset_path(preset), [f"data.corpus={corpus}", f"run.seed={seed}", f"run.device={device}",
                                             *(overrides or [])])
    estimates = estimate_seconds(cfg, minutes, len(ablate))
    print(f"jooci demo -> {out}: {len(estimates)} stages, ~{duration(sum(estimates.values()))} from scratch on a "
          "2-core CPU (finished stages are reused)", flush=True)
    stages = Stages(out, len(estimates), estimates)

    stages.run("corpus", synthesize, corpus, synth)
    dist = init_distributed(cfg.run.device, timeout=cfg.run.dist_timeout)
    pre = out / "pretrain"
    stages.run("pretrain", run_all, cfg, pre, dist)

    models = {"fbank": "fbank", "baseline": pre / "baseline", "jooci": pre / "final"}

    def ablations() -> None:
        labels = sorted(pre.glob("targets-*"))[-1]
        content = pre / f"content-{cfg.schedule.content_iterations}" / "final"
        teacher = teacher_folder(cfg, pre)
        for name in ablate:
            acfg = replace_config(cfg, [o.format(dim=cfg.model.content.dim) for o in ABLATIONS[name][1]])
            folder = out / "ablations" / name
            p1 = train_phase(acfg, "phase1", folder / "phase1", PhaseInputs(labels, content, teacher), dist,
                             manifest=pre / "manifest.jsonl")
            models[f"jooci {name}"] = train_phase(acfg, "phase2", folder / "phase2", PhaseInputs(labels, p1, teacher),
                                                  dist, manifest=pre / "manifest.jsonl")

    if ablate:
        stages.run("ablations", ablations)

    ecfg = EvalConfig(seed=seed, cache_dir=str(out / "eval" / "cache"), device=str(dist.device),
                      **({"threads": threads, "head_threads": threads} if threads else {}))

    def evaluate_all() -> dict[str, Path]:
        models[CONTROL] = untrained_other_twin(pre / "final", pre / "untrained-other", cfg.run.seed)
        runs = {}
        for label, model in models.items():
            folder = out / "eval" / label.replace(" ", "_")
            if not (folder / "results.json").exists():
                print(f"-- evaluating {label}", flush=True)
                evaluate(str(model), corpus, TASKS, folder, ecfg)
            runs[label] = folder
        return runs

    runs = stages.run("evaluate", evaluate_all)
    teacher_dir = teacher_folder(cfg, pre)

    def check_speakers() -> list[dict]:
        from jooci.superb.verify import untrained_speaker_folder

        untrained = untrained_speaker_folder(teacher_dir, out / "eval" / "untrained-teacher", seed=cfg.run.seed)
        return speaker_check(out / "eval" / "verify.json", corpus, teacher_dir,
                             {k: v for k, v in models.items() if k.startswith("jooci")}, str(dist.device),
                             cfg.losses.teacher_temp, untrained)

    speaker = stages.run("speaker check", check_speakers)
    report = stages.run("report", write_demo_report, out, runs, cfg, pre, stages.times, minutes, speaker)
    total = time.perf_counter() - t_start
    print(f"\nreport: {report}\n(demo wall time this run: {total / 60:.1f} min)")
    return report

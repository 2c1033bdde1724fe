"""``jooci demo``: the whole story on the embedded corpus, as one resumable run.

Stages (each reused when already finished, so a second run takes seconds)::

    1 corpus      JOOCI-synth (jooci synth)
    2 pretrain    targets -> Content iterations -> teacher -> phase 1 -> phase 2, and the
                  HuBERT-style baseline with the same number of Content updates (jooci pretrain --all)
    3 ablations   optional: JOOCI variants retrained from the shared Content model and teacher
    4 evaluate    fbank floor, baseline and JOOCI on PR, ASR, SID, ASV, ER (jooci evaluate)
    5 speaker     each model's own embedding on the ASV trials, no trained head (jooci verify):
      check       the log-mel statistics, the RDINO teacher, every JOOCI's Other embedding
    6 report      DIR/report/report.md with tables, plots, training curves, timings, a verdict

It is formant synthesis, far from real speech: the numbers show whether the mechanism works in
a controlled setting, not what LibriSpeech or VoxCeleb would give.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from jooci.configio import replace as replace_config

# name -> (what it tests, config overrides). Each retrains phases 1-2 from the shared Content model
# and teacher, so one ablation costs one JOOCI training, not a whole pipeline.
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "no-append": ("without split-and-append (the Other encoder sees no Content states)",
                  ["model.other.append_dim=0"]),
    "no-stopgrad": ("without the stop-gradient (Other losses reach the Content encoder through the appends)",
                    ["model.append_gradient=true"]),
    "no-regulariser": ("without the gradient-reversal content adversary", ["losses.regulariser=0"]),
    "recon": ("with the log-mel reconstruction decoder",
              ["losses.reconstruction=1", "model.mel_decoder={{dim: {dim}}}"]),
    "unfrozen-phase1": ("Content not frozen in phase 1: it keeps training on masked prediction there "
                        "(phase 1's steps on top of the equal budget)",
                        ["schedule.freeze_content_phase1=false", "schedule.freeze_frontend_phase1=false"]),
}

# The control row: the demo's JOOCI with its Other encoder untrained (docs/method.md T29).
CONTROL = "jooci untrained-other"

TASKS = ("pr", "asr", "sid", "asv", "er")
CONTENT_TASKS, OTHER_TASKS = ("pr", "asr"), ("sid", "asv", "er")


# Seconds per unit of work on the reference machine (the project's 2-core CPU, small preset with
# its log-mel frontend, 16 s batches, 60-minute corpus; measured 2026-11-26 in session 3 from the
# demo's checkpoint times, benchmarks/demo.md): what the time estimate uses.
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
        hint = f" (fresh: ~{_duration(est)} on a 2-core CPU)" if est else ""
        print(f"\n== stage {self.n}/{self.total}: {name}{hint}", flush=True)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        dt = time.perf_counter() - t0
        # a reused stage takes ~0 s: keep the time it took when it really ran
        if name not in self.times or dt > 5:
            self.times[name] = round(dt, 1)
        self._path.write_text(json.dumps(self.times, indent=1))
        print(f"== {name}: {dt:.1f} s (demo so far: {_duration(time.perf_counter() - self._t0)})", flush=True)
        return result


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run_demo(out: str | os.PathLike = "runs/demo", preset: str = "small", minutes: float = 60.0, seed: int = 0,
             ablate: list[str] | None = None, overrides: list[str] | None = None, speakers: int = 48,
             device: str = "auto", threads: int | None = None) -> Path:
    """Run (or resume) the demo into ``out``; returns the report path.

    device: where pretraining and feature extraction run ("auto": a GPU if there is one, else the
    CPU). threads: torch threads for extraction and the evaluation heads (default 1, which is the
    fastest on the 2-core machine the demo is sized for; raise it on a many-core machine).
    """
    from jooci.data.synth import SynthConfig, synthesize
    from jooci.superb.runner import EvalConfig, evaluate
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase
    from jooci.train.pipeline import run_all, teacher_folder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ablate = list(ablate or [])
    unknown = [a for a in ablate if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    t_start = time.perf_counter()
    corpus = out / "corpus"
    cfg = load_config(preset_path(preset), [f"data.corpus={corpus}", f"run.seed={seed}", f"run.device={device}",
                                             *(overrides or [])])
    estimates = estimate_seconds(cfg, minutes, len(ablate))
    print(f"jooci demo -> {out}: {len(estimates)} stages, ~{_duration(sum(estimates.values()))} from scratch on a "
          "2-core CPU (finished stages are reused)", flush=True)
    stages = Stages(out, len(estimates), estimates)

    stages.run("corpus", synthesize, corpus, SynthConfig(minutes=minutes, seed=seed, speakers=speakers))
    dist = init_distributed(cfg.run.device)
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
        from jooci.models.speaker import untrained_speaker_folder

        untrained = untrained_speaker_folder(teacher_dir, out / "eval" / "untrained-teacher", seed=cfg.run.seed)
        return speaker_check(out / "eval" / "verify.json", corpus, teacher_dir,
                             {k: v for k, v in models.items() if k.startswith("jooci")}, str(dist.device),
                             cfg.losses.teacher_temp, untrained)

    speaker = stages.run("speaker check", check_speakers)
    report = stages.run("report", write_demo_report, out, runs, cfg, pre, stages.times, minutes, speaker)
    total = time.perf_counter() - t_start
    print(f"\nreport: {report}\n(demo wall time this run: {total / 60:.1f} min)")
    return report


# ---------------------------------------------------------------------------------------------
# The report


UNTRAINED = "untrained teacher (same architecture, no training)"


def untrained_other_twin(final: Path, out: Path, seed: int) -> Path:
    """The control: the JOOCI model in ``final`` with its Other encoder untrained (initialised from
    ``seed``), saved to ``out`` (kept when it is already there for the same ``final``)."""
    from jooci.superb.verify import untrained_reference

    mark = {"from": str(final), "fingerprint": _fingerprint(str(final)), "seed": seed}
    if (out / "model.safetensors").is_file() and (out / "untrained-other.json").is_file() \
            and json.loads((out / "untrained-other.json").read_text()) == mark:
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    untrained_reference(str(final), tmp, seed)
    (tmp / "untrained-other.json").write_text(json.dumps(mark, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def speaker_check(path: Path, corpus: Path, teacher: Path, joocis: dict[str, Path], device: str,
                  teacher_temp: float = 0.04, untrained: Path | None = None) -> list[dict]:
    """EER of each model's *own* embedding on the ASV trials, cosine-scored with no trained head
    (``jooci verify``): the log-mel statistics, the RDINO teacher, and every JOOCI's Other
    embedding. Tells whether the teacher learned speakers and whether the Other encoder took it over.
    Each row also holds a linear SID probe on the same embedding (``sid_probe``: seen speakers,
    a trained head, what a SUPERB SID head can use). Rows are kept in ``path`` with a fingerprint
    of the model files they scored; a later run scores only what it does not hold for the same
    files (an ablation added with ``--ablate``, a retrained model, a probe missing from an older
    run's rows). Rows of sources this run does not ask for stay in the file. The teacher's row
    also holds what phases 1-2 distil from it (``teacher_targets``: its DINO distribution's entropy
    at ``teacher_temp``). ``untrained``: a teacher folder of the teacher's architecture, untrained
    (``jooci.models.speaker.untrained_speaker_folder``): how much the teacher's training gave it."""
    from jooci.superb.verify import sid_probe, teacher_targets, verify

    sources = {"log-mel mean + std (no learning)": "fbank", **({UNTRAINED: str(untrained)} if untrained else {}),
               "RDINO teacher": str(teacher), **{f"{k} Other embedding": str(v) for k, v in joocis.items()}}
    done = {r["source"]: r for r in json.loads(path.read_text())} if path.exists() else {}
    rows = []
    for name, src in sources.items():
        mark = _fingerprint(src)
        row = done.get(name)
        if row is None or row.get("fingerprint") != mark:
            row = dict(verify(src, corpus, device=device, label=name).to_dict(), fingerprint=mark)
        if "sid_probe" not in row:
            row = dict(row, sid_probe=sid_probe(src, corpus, device=device))
        if name in ("RDINO teacher", UNTRAINED) and "targets" not in row:
            row = dict(row, targets=teacher_targets(src, corpus, temp=teacher_temp, device=device))
        rows.append(row)
    kept = rows + [r for name, r in done.items() if name not in sources]
    if kept != list(done.values()):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(kept, indent=1))
        os.replace(tmp, path)  # an interrupted write never leaves a broken file for the next run
    return rows


def _fingerprint(source: str) -> str:
    """``source`` plus the size and modification time of its weights (or config): a model
    retrained in the same folder gets a new fingerprint."""
    folder = Path(source)
    for name in ("model.safetensors", "config.json"):
        if (folder / name).is_file():
            st = (folder / name).stat()
            return f"{source}|{name}|{st.st_size}|{st.st_mtime_ns}"
    return source


def speaker_section(rows: list[dict], mel_frontend: bool = True) -> list[str]:
    if not rows:
        return []
    out = ["## Where the speaker information is", "",
           "Each model's own utterance embedding, cosine-scored on the ASV test trials with no trained "
           "head (`jooci verify`; the way RDINO is reported). The Other encoder is distilled from the "
           "teacher: far worse than the teacher means the distillation did not carry the teacher's "
           "speaker information over; a teacher no better than the log-mel statistics has little to give. "
           "The last column is a linear SID probe on the same embedding (seen speakers, a trained head, "
           "C chosen on the SID dev split; `jooci verify --probe`). The untrained teacher (the teacher's "
           "architecture initialised from the run's seed, no training) shows what the teacher's training gave it.",
           "", "| embedding | EER % ↓ | minDCF (p=0.01) ↓ | SID probe acc % ↑ |", "|---|---|---|---|"]
    out += [f"| {r['source']} | {r['eer']:.2f} | {r['min_dcf'].get('0.01', float('nan')):.3f} | "
            f"{_fmt_probe(r)} |" for r in rows]
    return out + ["", *speaker_reading(rows, mel_frontend)]


def _fmt_probe(row: dict) -> str:
    return f"{row['sid_probe']['test']:.1f}" if row.get("sid_probe") else "n/a"


# Trial-EER differences smaller than this (points) are read as "about the same" (12k trials: the
# 95 % bootstrap interval of one EER is about +-0.6 points in the demo's reports).
_EER_MARGIN = 1.0
# SID-probe accuracy differences smaller than this (points) are read as "no better" (the demo's SID
# test set has 132 utterances: one accuracy's 95 % interval is about +-6 points).
_PROBE_MARGIN = 5.0
# A teacher whose DINO targets keep at least this share of a uniform distribution's entropy gives
# the distillation little to carry (session 6: the demo's RDINO teacher 0.85, a label-trained 0.01).
_UNIFORM_SHARE = 0.75


def speaker_reading(rows: list[dict], mel_frontend: bool = True) -> list[str]:
    """One paragraph that reads the speaker-check table: does the teacher know more than the
    log-mel statistics (which the baseline's lowest layer already carries), and did JOOCI's Other
    embedding take that over? Empty when the table lacks the statistics or the teacher.
    ``mel_frontend``: both models read log-mel, so their lowest layers hold those statistics."""
    eer = {r["source"]: r["eer"] for r in rows}
    stats, teacher = eer.get("log-mel mean + std (no learning)"), eer.get("RDINO teacher")
    if stats is None or teacher is None:
        return []
    gain = stats - teacher
    if gain >= _EER_MARGIN:
        words = [f"Scored by cosine on unseen speakers, the teacher knows more about speakers than the log-mel "
                 f"statistics ({teacher:.1f} against {stats:.1f} % EER): there is something for the Other encoder "
                 "to add."]
    else:
        words = [f"Scored by cosine on unseen speakers, the teacher knows no more about speakers than the log-mel "
                 f"statistics ({teacher:.1f} against {stats:.1f} % EER)"
                 + (", which both models' log-mel input already carries" if mel_frontend else "")
                 + ": the Other encoder has little to add on speaker tasks here, however well it is distilled."]
    other = eer.get("jooci Other embedding")
    if other is not None:
        gap = other - teacher
        words.append(f"JOOCI's Other embedding is at {other:.1f} %: " + (
            "as good as its teacher or better." if gap < _EER_MARGIN else
            f"{gap:.1f} points short of its teacher, so the distillation carried over only part of it."))
    probe = {r["source"]: r["sid_probe"]["test"] for r in rows if r.get("sid_probe")}
    p_stats, p_teacher = probe.get("log-mel mean + std (no learning)"), probe.get("RDINO teacher")
    if p_stats is not None and p_teacher is not None:
        if p_teacher - p_stats >= _PROBE_MARGIN:
            words.append(f"With a trained linear probe on the seen speakers, the teacher's embedding identifies them "
                         f"better than the log-mel statistics ({p_teacher:.1f} against {p_stats:.1f} % SID): it holds "
                         "speaker information a SID head can use beyond them.")
        else:
            words.append(f"With a trained linear probe on the seen speakers, the teacher's embedding identifies them "
                         f"no better than the log-mel statistics ({p_teacher:.1f} against {p_stats:.1f} % SID)"
                         + (", which both models' input layer already carries" if mel_frontend else "")
                         + ": on SID the Other stream has nothing to add here.")
    words += _training_gain(rows)
    targets = next((r["targets"] for r in rows if r["source"] == "RDINO teacher" and r.get("targets")), None)
    if targets:
        near = targets["entropy"] >= _UNIFORM_SHARE * targets["uniform"]
        words.append(f"The teacher's DINO targets, what phases 1–2 distil, have an entropy of {targets['entropy']:.2f} "
                     f"nats against {targets['uniform']:.2f} for a uniform distribution (top probability "
                     f"{targets['top_prob']:.3f} on average)" + (
                         ": nearly uniform, so the distillation has little to carry over beyond its first steps "
                         "(docs/method.md T28)." if near else "."))
    return [" ".join(words), ""]


def _training_gain(rows: list[dict]) -> list[str]:
    """One sentence: what the teacher's training gave it over an untrained network of its
    architecture (the ``UNTRAINED`` row), on the trials and on the SID probe."""
    by = {r["source"]: r for r in rows}
    trained, untrained = by.get("RDINO teacher"), by.get(UNTRAINED)
    if trained is None or untrained is None:
        return []
    e_t, e_u = trained["eer"], untrained["eer"]
    p_t, p_u = (r["sid_probe"]["test"] if r.get("sid_probe") else None for r in (trained, untrained))
    eer_gain = e_u - e_t >= _EER_MARGIN
    probe_gain = None if p_t is None or p_u is None else p_t - p_u >= _PROBE_MARGIN
    probe = "" if probe_gain is None else f", SID probe {p_t:.1f} against {p_u:.1f} %"
    head = (f"Against an untrained network of its own architecture (EER {e_t:.1f} against {e_u:.1f} %{probe}), "
            "the teacher's training ")
    if eer_gain and probe_gain is not False:
        return [head + "made it a better speaker model."]
    if eer_gain:
        return [head + "improved how cosine scores compare unseen speakers, but not how well a linear head "
                "separates the seen ones: random features of log-mel already separate them about as well "
                "(docs/method.md T29)."]
    if probe_gain:
        return [head + "helped a linear head on the seen speakers but not cosine scoring of unseen ones."]
    if e_t - e_u >= _EER_MARGIN or (probe_gain is False and p_u - p_t >= _PROBE_MARGIN):
        return [head + "left it worse than the untrained network on at least one of the two: at this scale the "
                "teacher has nothing of its own to pass on (docs/method.md T29)."]
    return [head + "gave it nothing measurable about speakers: at this scale the teacher has nothing of its own "
            "to pass on (docs/method.md T29)."]


def write_demo_report(out: Path, runs: dict[str, Path], cfg, pre: Path, stage_times: dict[str, float],
                      minutes: float, speaker: list[dict] | None = None) -> Path:
    """report.md = the evaluation table and plots (jooci report) + what the demo adds: setting,
    training curves, timings, machine, and a verdict in words."""
    from jooci.superb.report import load_run, write_report

    rdir = out / "report"
    labels = list(runs)
    write_report([runs[k] for k in labels], rdir, reference="baseline", labels=labels)
    table = (rdir / "report.md").read_text()
    docs = {k: load_run(runs[k]) for k in labels}
    curves = plot_training_curves(pre, rdir / "training_curves.png")
    lines = ["# jooci demo: JOOCI vs a HuBERT-style baseline on JOOCI-synth", "",
             verdict(docs), "", "## Setting", "", *setting(cfg, pre, minutes), "",
             "## Results", "", table.split("\n", 1)[1] if table.startswith("#") else table, "",
             *speaker_section(speaker or [], cfg.model.frontend.kind == "mel"),
             "## Training curves", "", f"![training curves]({curves.name})", "",
             "## Time", "", "| stage | seconds |", "|---|---|",
             *[f"| {k} | {v} |" for k, v in stage_times.items()], "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} "
             f"{platform.release()}, Python {platform.python_version()}, torch {_torch_version()}.", "",
             "## What this corpus can and cannot show", "",
             "JOOCI-synth is formant synthesis (espeak-ng): speakers differ by accent, voice variant, pitch "
             "and rate; styles by rate, pitch, range and loudness; content is a ~350-word grammar. It is "
             "far from real speech, so these numbers show whether the mechanism works in a controlled "
             "setting, at a tiny scale (minutes of audio, a few hundred steps on a CPU) — not what the "
             "paper's LibriSpeech/VoxCeleb numbers would be. Word error rates stay high here: a small "
             "recogniser trained on a few minutes of formant speech is far from converged. Speaker identity "
             "is a few global voice settings on clean, alike recordings, which utterance-level log-mel "
             "statistics nearly capture (see the fbank row's SID): SID and ASV can show the Other stream "
             "only where its teacher knows more about speakers than those statistics. A teacher of a few "
             "hundred CPU steps barely does, and teachers trained for 22-50 CPU minutes outside the demo's "
             "budget, on other speakers' voices, left SID and ASV within noise of the baseline over four "
             "seeds too (benchmarks/demo.md, sessions 5, 7 and 8). Speaking style is "
             "where the Other stream adds most here, but random features of log-mel carry much of it too: "
             "the control row (the same JOOCI with its Other encoder untrained) shows how much of any lead "
             "needs no training at all. One run is one draw of corpus and initialisation; "
             "`jooci demo --seeds 0 1 2 3` gives a verdict over seeds."]
    (rdir / "report.md").write_text("\n".join(lines) + "\n")
    return rdir / "report.md"


def _torch_version() -> str:
    import torch

    return torch.__version__


def setting(cfg, pre: Path, minutes: float) -> list[str]:
    from jooci.hub import load
    from jooci.models.jooci import parameter_breakdown

    s = cfg.schedule
    content_updates = s.of("content").steps * s.content_iterations + s.of("phase2").steps
    out = [f"- corpus: JOOCI-synth, {minutes:g} minutes, seed {cfg.run.seed}; pretraining audio: "
           f"{', '.join(cfg.data.manifests)}",
           f"- preset `{cfg.preset}`; batches of {cfg.data.batch_seconds:g} s of audio"
           + "".join(f" ({p} {s.batch_seconds(p, cfg.data):g} s)" for p in ("content", "teacher", "phase1", "phase2")
                     if s.batch_seconds(p, cfg.data) != cfg.data.batch_seconds
                     and not (p == "teacher" and cfg.run.teacher_init))  # an external teacher has no batches here
           + f", crops of {cfg.data.crop_seconds:g} s",
           f"- steps: {s.content_iterations} Content iterations × {s.of('content').steps}, " + (
               "no teacher stage, " if cfg.run.teacher_init else
               f"teacher {s.of('teacher').steps}{' (augmented views)' if cfg.losses.augment_teacher_views else ''}, ")
           + f"phase 1 {s.of('phase1').steps}, phase 2 {s.of('phase2').steps}; the "
           f"baseline gets the same {content_updates} Content updates as JOOCI's Content encoder"]
    if cfg.run.teacher_init:
        out.append(f"- teacher: `{cfg.run.teacher_init}`, trained outside this run and frozen "
                   "(`run.teacher_init`; its training is not in this run's budget or time)")
    fe = cfg.model.frontend
    out.append("- shared frontend (both models): " + (
        f"{fe.n_mels}-bin log-mel at 50 Hz{' + LayerNorm' if fe.output_norm else ', unnormalised'} "
        "(docs/method.md M1b, T25)" if fe.kind == "mel" else
        f"the wav2vec 2.0 CNN, {fe.dim} channels, {fe.norm_mode} norm"))
    for name, folder in (("baseline", pre / "baseline"), ("JOOCI", pre / "final")):
        if (folder / "config.json").exists():
            counts = parameter_breakdown(load(folder))
            parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if "training only" not in k)
            out.append(f"- {name} parameters: {parts}")
    return out


def verdict(docs: dict[str, dict[str, Any]]) -> str:
    """One paragraph in plain words: did JOOCI beat the baseline on Other tasks without losing on
    Content tasks? A task counts as won or lost only where the paired test-set bootstrap interval
    of the difference excludes 0 (:func:`jooci.superb.report.compare`); results without per-item
    records fall back to the bare point values, and the paragraph says so."""
    from jooci.superb.metrics import METRICS
    from jooci.superb.report import compare

    if "jooci" not in docs or "baseline" not in docs:
        return ""
    better, worse, same, details = [], [], [], []
    paired = True
    for task in TASKS:
        j, b = docs["jooci"].get("tasks", {}).get(task), docs["baseline"].get("tasks", {}).get(task)
        if not j or not b:
            continue
        c = compare(j, b)
        if c is None:
            paired = False
            higher = METRICS[j["metric"]][0]
            diff = j["value"] - b["value"]
            kind = "same" if abs(diff) < 1e-9 else ("better" if (diff > 0) == higher else "worse")
        else:
            kind = c["verdict"]
            details.append(f"{task.upper()} {c['difference']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}]")
        {"better": better, "worse": worse, "same": same}[kind].append(task.upper())
    other_ok = all(t.upper() in better for t in OTHER_TASKS)
    content_ok = not any(t.upper() in worse for t in CONTENT_TASKS)
    if other_ok and content_ok:
        head = "**JOOCI beat the baseline on every Other task (SID, ASV, ER) without losing on Content tasks (PR, ASR).**"
    elif other_ok:
        head = "**JOOCI beat the baseline on every Other task (SID, ASV, ER), but lost on a Content task.**"
    else:
        head = "**JOOCI did not beat the baseline on every Other task.**"
    if paired:
        how = ("Better or worse means the paired bootstrap interval of the difference (95 %, test items resampled) "
               f"excludes 0; JOOCI − baseline in each metric's unit: {'; '.join(details)}. The intervals leave out "
               "the randomness of pretraining and head training (one seed each), so they understate the noise.")
    else:
        how = "Bare point values (these results carry no per-item records): differences of a point or two are noise."
    return (f"{head} JOOCI better: {', '.join(better) or 'none'}; worse: {', '.join(worse) or 'none'}; "
            f"no clear difference: {', '.join(same) or 'none'}. {how}" + _control_reading(docs, better))


def _control_reading(docs: dict[str, dict[str, Any]], won: list[str]) -> str:
    """Sentences on the control (``CONTROL``: the same JOOCI with its Other encoder untrained): on
    which Other tasks JOOCI beats it (paired bootstrap), and so which of the tasks won against the
    baseline (``won``, upper case) its Other encoder's training earned. Empty without the control's
    results or without per-item records."""
    from jooci.superb.report import compare

    if CONTROL not in docs:
        return ""
    beats, rest, behind = {}, {}, {}
    for task in OTHER_TASKS:
        j, c = docs["jooci"].get("tasks", {}).get(task), docs[CONTROL].get("tasks", {}).get(task)
        if not j or not c:
            continue
        d = compare(j, c)
        if d is None:
            return ""  # no per-item records: no paired verdict to read
        {"better": beats, "same": rest, "worse": behind}[d["verdict"]][task.upper()] = d["difference"]
    rest.update(behind)

    def named(diffs: dict[str, float]) -> str:
        return ", ".join(f"{t} {v:+.1f}" for t, v in diffs.items())

    out = (" Control: the same JOOCI with its Other encoder untrained (a second encoder's features without "
           f"its training). JOOCI beats it on {named(beats) or 'no Other task'}"
           + (f"; not on {named(rest)}" if rest else "") + ".")
    return out + credit_sentences([t for t in won if t in rest], [t for t in won if t in beats], list(behind))


def credit_sentences(unearned: list[str], earned: list[str], behind: list[str] = ()) -> str:
    """What the control says about the wins over the baseline: ``unearned`` tasks the control matches
    or beats, ``earned`` ones JOOCI also wins against it; ``behind``: Other tasks where the control
    is better than JOOCI (shared by one seed's report and the seeds summary)."""
    out = ""
    if behind:
        out += (f" On {', '.join(behind)} the untrained control is better than JOOCI: training the Other encoder "
                "removed information its random features gave the downstream.")
    if unearned:
        out += (f" So JOOCI's win over the baseline on {', '.join(unearned)} is not shown to come from what phases "
                "1–2 taught the Other encoder: a second, untrained encoder gives the downstream about as much "
                "(docs/method.md T29).")
    if earned:
        out += f" Its win on {', '.join(earned)} beats the control too: the Other encoder's training earned it."
    return out


def plot_training_curves(pre: Path, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [d for d in sorted(pre.iterdir()) if (d / "metrics.jsonl").exists()]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 3), squeeze=False)
    for ax, d in zip(axes[0], stages):
        recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in recs]
        for key in ("loss", "mpl", "distill", "adversary"):
            if key in recs[0]:
                ax.plot(steps, [r[key] for r in recs], label=key)
        ax.set_title(d.name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--preset", default="small", help="config preset: configs/<preset>.yaml (default small)")
    p.add_argument("--minutes", type=float, default=60.0, help="corpus size in minutes (default 60)")
    p.add_argument("--speakers", type=int, default=48, help="synthetic speakers (default 48)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="K",
                   help="run the demo once per seed into DIR/seed-K (instead of --seed) and summarise them in "
                        "DIR/report: mean ± sd, and per task a verdict from the 95 %% interval of JOOCI − baseline "
                        "over the seeds; each seed takes as long as one demo")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for evaluation (default 1: fastest on 2 cores; raise on many cores)")
    p.add_argument("--ablate", nargs="+", default=[], choices=list(ABLATIONS), metavar="NAME",
                   help="also train and evaluate JOOCI variants: " + ", ".join(ABLATIONS))
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def run_demo_command(args: argparse.Namespace) -> int:
    from jooci.data.synth import SynthError

    try:
        if args.seeds:
            from jooci.demo_seeds import run_demo_seeds

            run_demo_seeds(args.out, args.seeds, preset=args.preset, minutes=args.minutes, ablate=args.ablate,
                           overrides=args.overrides, speakers=args.speakers, device=args.device,
                           threads=args.threads)
        else:
            run_demo(args.out, args.preset, args.minutes, args.seed, args.ablate, args.overrides, args.speakers,
                     args.device, args.threads)
    except SynthError as e:  # a corpus of other settings or an older format: never replaced silently
        print(f"jooci demo: error: {e} (a demo folder from another version or with other settings: "
              "pass another --out, or delete the folder to start over)", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"jooci demo: error: {e}", file=sys.stderr)
        if _raised_in_a_package(e):  # a library failing deep in a run: a bug, not bad input
            import traceback

            traceback.print_exception(e, file=sys.stderr)
            print("jooci demo: the error above was raised inside a library, not by jooci's own checks: "
                  "this is likely a bug in jooci; please report it with the traceback", file=sys.stderr)
        return 2
    return 0


def _raised_in_a_package(e: BaseException) -> bool:
    """Whether the innermost frame of ``e``'s traceback is an installed package other than jooci
    (torch, numpy, ...): a failure deep inside a library. jooci's own checks and Python's standard
    library (a missing file, a broken JSON file) are input problems, reported in one line."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    if where.is_relative_to(Path(__file__).resolve().parent):  # jooci itself, wherever it is installed
        return False
    return "site-packages" in where.parts or "dist-packages" in where.parts


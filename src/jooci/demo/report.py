"""The demo's report: ``report.md`` with the evaluation tables, the setting, the speaker check,
training curves, timings, and a verdict that fixed rules give from this run's numbers."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from jooci.demo.common import CONTENT_TASKS, CONTROL, OTHER_TASKS, TASKS, UNTRAINED


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


# The fixed rules the speaker reading applies. Trial-EER differences smaller than this (points) are
# read as "about the same" (about twice the 95 % bootstrap half-width of one EER on the demo's ~12k
# trials).
_EER_MARGIN = 1.0
# SID-probe accuracy differences smaller than this (points) are read as "no better" (the demo's SID
# test set has about 130 utterances: one accuracy's 95 % interval is about +-6 points).
_PROBE_MARGIN = 5.0
# A teacher whose DINO targets keep at least this share of a uniform distribution's entropy gives
# the distillation little to carry.
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
                         ": nearly uniform, so the distillation has little to carry over beyond its first steps."
                         if near else "."))
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
                "separates the seen ones: random features of log-mel already separate them about as well."]
    if probe_gain:
        return [head + "helped a linear head on the seen speakers but not cosine scoring of unseen ones."]
    if e_t - e_u >= _EER_MARGIN or (probe_gain is False and p_u - p_t >= _PROBE_MARGIN):
        return [head + "left it worse than the untrained network on at least one of the two: at this scale the "
                "teacher has nothing of its own to pass on."]
    return [head + "gave it nothing measurable about speakers: at this scale the teacher has nothing of its own "
            "to pass on."]


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
             "paper's LibriSpeech/VoxCeleb numbers would be; a small recogniser trained on a few minutes "
             "of formant speech is far from converged, so word error rates are not comparable to the paper's. "
             "Speaker identity is a few global voice settings on clean, alike recordings, so utterance-level "
             "log-mel statistics carry much of it (the fbank row): SID and ASV can show the Other stream "
             "only where its teacher knows more about speakers than those statistics (the speaker check "
             "above). The control row (the same JOOCI with its Other encoder untrained) shows how much of "
             "any lead needs no training of the Other encoder. One run is one draw of corpus and "
             "initialisation; `jooci demo --seeds 0 1 2 3` gives a verdict over seeds."]
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
    synth = Path(cfg.data.corpus) / "synth.json" if cfg.data.corpus else None
    made = json.loads(synth.read_text()).get("config", {}) if synth is not None and synth.is_file() else {}
    sessions = (f", {made['speakers']} speakers in {made['sessions']} recording sessions each "
                f"({made.get('test_sessions')} of them SID test sessions)" if made.get("sessions") else "")
    out = [f"- corpus: JOOCI-synth, {minutes:g} minutes{sessions}, seed {cfg.run.seed}; pretraining audio: "
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
        "(docs/method.md M1b)" if fe.kind == "mel" else
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
                "1–2 taught the Other encoder: a second, untrained encoder gives the downstream about as much.")
    if earned:
        out += f" Its win on {', '.join(earned)} beats the control too: the Other encoder's training earned it."
    return out


def plot_training_curves(pre: Path, path: Path) -> Path:
    from jooci.extras import require

    matplotlib = require("matplotlib")  # the plots extra
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


"""``jooci report``: several ``results.json`` -> one markdown table and the plots.

- ``report.md``: models x tasks (PR PER, ASR WER, SID acc, ASV EER + minDCF, ER acc), each
  model's upstream and kind (a jooci model, fbank, or a Hugging Face transformers model with how
  its input is fed), the runs that did not finish every task they were asked for, the
  test-set uncertainty (95 % bootstrap intervals, and the paired difference to the reference with
  a verdict, for runs that stored per-item test records), the relative improvement over a
  reference model per task and its mean over tasks (docs/evaluation.md: relative error reduction,
  accuracy -> error = 100 - acc), the learning rates chosen, and the layer-wise probe values.
- ``layer_weights.png``: the learned softmax layer weights, one panel per model, one line per task.
- ``layerwise.png``: the layer-wise analysis, a linear probe per hidden state for PR (Content) and
  SID (Other), one column per model; Content states blue, Other states orange.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jooci.superb.metrics import (METRICS, bootstrap_interval, mean_relative_improvement, paired_bootstrap,
                                  relative_improvement)

TASK_ORDER = ("pr", "asr", "sid", "asv", "er")
TASK_TITLES = {"pr": "PR PER ↓", "asr": "ASR WER ↓", "sid": "SID acc ↑", "asv": "ASV EER ↓", "er": "ER acc ↑"}
VERDICT_WORDS = {"better": "better", "worse": "worse", "same": "within noise"}


class ReportError(ValueError):
    """A run folder without a readable results.json."""


def load_run(path: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a run folder (or the file itself)."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not f.is_file():
        raise ReportError(f"{p}: no results.json (run `jooci evaluate --out {p}` first)")
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{f}: invalid JSON ({e})") from None
    if "tasks" not in doc or "model" not in doc:
        raise ReportError(f"{f}: not a jooci evaluation result (no 'tasks'/'model')")
    doc.setdefault("run", str(p))
    return doc


def _label(doc: dict[str, Any]) -> str:
    return str(doc.get("label") or doc["model"]["name"])


def _fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def compare(task_a: dict[str, Any], task_b: dict[str, Any], resamples: int = 1000, level: float = 0.95,
            seed: int = 0) -> dict[str, Any] | None:
    """Paired test-set bootstrap of run A against run B on one task.

    Args:
        task_a, task_b: two ``results.json`` task entries (``doc["tasks"][task]``) of the same task
            on the same test set.

    Returns:
        :func:`~jooci.superb.metrics.paired_bootstrap`'s dict (``difference`` = A - B in the
        metric's unit, ``low``, ``high``, ``resamples``, ``level``) plus ``verdict``: "better" or
        "worse" for A relative to B when the interval excludes 0 (minding whether the metric is
        higher-better), else "same". None when either entry has no ``extra["items"]`` (results
        written before the items were stored).

    Raises:
        ValueError: different metrics, or item lists that are not the same test set.
    """
    items_a = (task_a.get("extra") or {}).get("items")
    items_b = (task_b.get("extra") or {}).get("items")
    if items_a is None or items_b is None:
        return None
    metric = task_a["metric"]
    if task_b["metric"] != metric:
        raise ValueError(f"cannot compare {metric} with {task_b['metric']}")
    out: dict[str, Any] = paired_bootstrap(metric, items_a, items_b, resamples, level, seed)
    out["verdict"] = interval_verdict(out["low"], out["high"], METRICS[metric][0])
    return out


def interval_verdict(low: float, high: float, higher_is_better: bool) -> str:
    """What an interval of A − B says about A: "better" or "worse" where it excludes 0 (minding
    the metric's direction), else "same"."""
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "same"


def _interval(task: dict[str, Any]) -> tuple[float, float] | None:
    """A task entry's stored 95 % interval (computed from its items if only those are stored)."""
    extra = task.get("extra") or {}
    if extra.get("ci95") is not None:
        return float(extra["ci95"][0]), float(extra["ci95"][1])
    if extra.get("items") is not None:
        return bootstrap_interval(task["metric"], extra["items"])
    return None


def _uncertainty(docs: Sequence[dict[str, Any]], labels: list[str], ref: dict[str, Any], ref_label: str,
                 tasks: list[str]) -> list[str]:
    """The "Test-set uncertainty" lines; empty when no run stored per-item test records."""
    if not any((d["tasks"][t].get("extra") or {}).get("items") is not None for d in docs for t in d["tasks"]):
        return []
    out = ["", "**Test-set uncertainty.** 95 % percentile bootstrap intervals over the test items (utterances; "
           "ASV: trials), 1000 resamples. They cover test-set sampling only, not the randomness of head training "
           "(seed, learning-rate sweep), so the real uncertainty is larger. '-': no per-item records in that run.", "",
           "| model | " + " | ".join(TASK_TITLES[t] for t in tasks) + " |", "|" + "---|" * (1 + len(tasks))]
    for d, label in zip(docs, labels):
        cells = []
        for t in tasks:
            ci = _interval(d["tasks"][t]) if t in d["tasks"] else None
            cells.append("-" if ci is None else f"{_fmt(d['tasks'][t]['value'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    others = [(d, label) for d, label in zip(docs, labels) if d is not ref]
    if others:
        out += ["", f"Paired difference to {ref_label} (model − {ref_label}, in the metric's unit; the same "
                "resampled test items for both) with its 95 % interval: 'better' / 'worse' where the interval excludes "
                "0, 'within noise' where it does not.", "",
                f"| model − {ref_label} | " + " | ".join(TASK_TITLES[t] for t in tasks) + " |",
                "|" + "---|" * (1 + len(tasks))]
        for d, label in others:
            cells = []
            for t in tasks:
                c = None
                if t in d["tasks"] and t in ref["tasks"]:
                    try:
                        c = compare(d["tasks"][t], ref["tasks"][t])
                    except ValueError:
                        cells.append("not the same test set")
                        continue
                cells.append("-" if c is None else f"{c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
                             f"{VERDICT_WORDS[c['verdict']]}")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def markdown(docs: Sequence[dict[str, Any]], reference: str | None = None) -> str:
    """The report's markdown: results table, test-set uncertainty (runs with per-item test records),
    relative improvements, LRs, probes."""
    labels = [_label(d) for d in docs]
    ref_label = reference or labels[0]
    if ref_label not in labels:
        raise ReportError(f"reference {ref_label!r} is not among the runs ({', '.join(labels)})")
    ref = docs[labels.index(ref_label)]
    tasks = [t for t in TASK_ORDER if any(t in d["tasks"] for d in docs)]
    out = ["# SUPERB-style evaluation", "",
           "Frozen upstreams, a learned softmax-weighted sum of hidden states, light task heads; metrics in %, "
           "dev-set model selection (learning rate and epoch).", ""]
    head = "| model | params (M) | layers | " + " | ".join(TASK_TITLES[t] for t in tasks) + f" | mean rel. vs {ref_label} |"
    out += [head, "|" + "---|" * (4 + len(tasks))]
    ref_vals = {t: (r["metric"], r["value"]) for t, r in ref["tasks"].items()}
    for d, label in zip(docs, labels):
        vals = {t: (r["metric"], r["value"]) for t, r in d["tasks"].items()}
        mean, used = mean_relative_improvement({t: vals[t] for t in tasks if t in vals}, ref_vals)
        cells = [_fmt(d["tasks"][t]["value"]) if t in d["tasks"] else "-" for t in tasks]
        rel = "(reference)" if d is ref else (f"{mean:+.1f}% ({','.join(used)})" if mean is not None else "n/a")
        out.append(f"| {label} | {d['model']['num_parameters'] / 1e6:.2f} | {d.get('layer_selection', 'all')} | "
                   + " | ".join(cells) + f" | {rel} |")
    out += _models(docs, labels)
    out += _uncertainty(docs, labels, ref, ref_label, tasks)
    out += ["", f"Relative improvement over {ref_label} per task: relative error reduction "
            "(e_ref - e) / e_ref, accuracy read as error = 100 - acc; the mean is over the tasks both runs have "
            "(n/a where the reference makes no error).", "",
            "| model | " + " | ".join(tasks) + " |", "|" + "---|" * (1 + len(tasks))]
    for d, label in zip(docs, labels):
        cells = []
        for t in tasks:
            if t in d["tasks"] and t in ref["tasks"]:
                r = relative_improvement(d["tasks"][t]["metric"], d["tasks"][t]["value"], ref["tasks"][t]["value"])
                cells.append("n/a" if r is None else f"{r:+.1f}%")
            else:
                cells.append("-")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if "asv" in tasks:
        out += ["", "ASV details (cosine scoring). EER: " + str(docs[0].get("eer_definition", "")) + ".", "",
                "| model | EER % | " + " | ".join(f"minDCF {k}" for k in _dcf_keys(docs)) + " | trials |",
                "|" + "---|" * (3 + len(_dcf_keys(docs)))]
        for d, label in zip(docs, labels):
            a = d["tasks"].get("asv")
            if a:
                dcf = a["extra"].get("min_dcf", {})
                out.append(f"| {label} | {_fmt(a['value'])} | " + " | ".join(_fmt(dcf.get(k), 4) for k in _dcf_keys(docs))
                           + f" | {a['extra'].get('trials', '')} |")
    if "asr" in tasks:
        cells = [f"{label} {_fmt(d['tasks']['asr']['extra'].get('cer'))}" for d, label in zip(docs, labels)
                 if "asr" in d["tasks"]]
        out += ["", "ASR character error rate (test, %; greedy CTC, no LM): " + ", ".join(cells) + "."]
    out += ["", "Dev values, chosen learning rate (sweep: dev value per LR), best epoch:", "",
            "| model | task | dev | lr | sweep | epoch / epochs | seconds |", "|---|---|---|---|---|---|---|"]
    for d, label in zip(docs, labels):
        for t in tasks:
            r = d["tasks"].get(t)
            if r:
                sweep = ", ".join(f"{k}: {_fmt(v)}" for k, v in r["lr_sweep"].items())
                out.append(f"| {label} | {t} | {_fmt(r['dev_value'])} | {r['lr']:g} | {sweep} | "
                           f"{r['best_epoch']} / {r['epochs']} | {r['seconds']} |")
    if any(d.get("probes") for d in docs):
        out += ["", "## Layer-wise analysis", "",
                "A linear probe per hidden state (PR: frame-level linear + CTC, PER %; SID: mean pooling + linear, "
                "accuracy %). C0 is the Transformer input, C1.. the Content layers, O1.. the Other blocks. "
                "Plot: `layerwise.png`.", ""]
        for d, label in zip(docs, labels):
            for p, r in (d.get("probes") or {}).items():
                vals = ", ".join(f"{n} {_fmt(v, 1)}" for n, v in zip(r["layer_names"], r["values"]))
                out.append(f"- {label} {p} ({r['metric']}): {vals}")
    out += ["", "Learned layer weights: `layer_weights.png`."]
    if any("timings" in d for d in docs):
        out += ["", "| model | audio min | extract s | tasks s | probes s | total s |", "|---|---|---|---|---|---|"]
        for d, label in zip(docs, labels):
            tm = d.get("timings", {})
            out.append(f"| {label} | {tm.get('audio_minutes', '')} | {tm.get('extract_s', '')} | "
                       f"{round(sum(tm.get('tasks_s', {}).values()), 1)} | {round(sum(tm.get('probes_s', {}).values()), 1)} "
                       f"| {tm.get('total_s', '')} |")
    return "\n".join(out) + "\n"


def _reading(model: dict[str, Any]) -> str:
    """How a Hugging Face model's input is fed, in words ("-" for the others)."""
    hf = model.get("hf")
    if not hf:
        return "-"
    norm = "normalised per utterance" if hf.get("do_normalize") else "raw waveform"
    mask = "attention mask" if hf.get("attention_mask") else "zero-padded, no attention mask"
    return f"{hf.get('class', '')}: {norm}, {mask}"


def _models(docs: Sequence[dict[str, Any]], labels: list[str]) -> list[str]:
    """The table of upstreams (name, kind, hidden states, input), and the runs left incomplete."""
    out = ["", "| model | upstream | kind | hidden states | input |", "|---|---|---|---|---|"]
    for d, label in zip(docs, labels):
        m = d["model"]
        names = m.get("layer_names") or []
        states = f"{len(names)} ({names[0]}..{names[-1]})" if len(names) > 1 else (names[0] if names else "-")
        out.append(f"| {label} | {m.get('name', '')} | {m.get('kind', '')} | {states} | {_reading(m)} |")
    unfinished = [(d, label) for d, label in zip(docs, labels) if d.get("complete") is False]
    if unfinished:
        out += ["", "Incomplete runs (results.json written before every task asked for had finished): "
                + "; ".join(f"{label}: {', '.join(d['tasks']) or 'no task'} of "
                            f"{', '.join(d.get('tasks_requested') or d['tasks'])}" for d, label in unfinished) + "."]
    return out


def _dcf_keys(docs: Sequence[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for d in docs:
        for k in d["tasks"].get("asv", {}).get("extra", {}).get("min_dcf", {}):
            if k not in keys:
                keys.append(k)
    return keys


def _pyplot():
    from jooci.extras import require

    matplotlib = require("matplotlib")  # the plots extra
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_layer_weights(docs: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """One panel per model: the learned softmax weight of each hidden state, one line per task."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(docs), figsize=(max(4.5, 4.5 * len(docs)), 3.4), squeeze=False)
    for ax, d in zip(axes[0], docs):
        for t in TASK_ORDER:
            r = d["tasks"].get(t)
            if r:
                ax.plot(range(len(r["layer_weights"])), r["layer_weights"], marker="o", label=t)
                names = r["layer_names"]
        n_c = d["model"].get("n_content", 0)
        if d["model"].get("n_other") and d.get("layer_selection", "all") == "all":
            ax.axvline(n_c - 0.5, color="grey", ls=":", lw=1)  # Content | Other
        if d["tasks"]:
            ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0)
        ax.set_title(_label(d))
        ax.set_ylabel("softmax weight")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layerwise(docs: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """The layer-wise analysis: rows = probe tasks (PR, SID), columns = models, bars per state."""
    plt = _pyplot()
    probes = [p for p in ("pr", "sid") if any(p in (d.get("probes") or {}) for d in docs)]
    if not probes:
        return None
    fig, axes = plt.subplots(len(probes), len(docs), figsize=(max(4.0, 3.6 * len(docs)), 2.8 * len(probes)),
                             squeeze=False)
    for row, p in enumerate(probes):
        for col, d in enumerate(docs):
            ax = axes[row][col]
            r = (d.get("probes") or {}).get(p)
            if not r:
                ax.set_axis_off()
                continue
            names = r["layer_names"]
            colors = ["tab:orange" if n.startswith("O") else "tab:blue" for n in names]
            ax.bar(range(len(names)), r["values"], color=colors)
            ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0, fontsize=8)
            higher = METRICS[r["metric"]][0]
            ax.set_title(f"{_label(d)}: {p.upper()} {'acc' if higher else r['metric'].upper()} "
                         f"{'↑' if higher else '↓'}", fontsize=9)
            if col == 0:
                ax.set_ylabel("%")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(runs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, reference: str | None = None,
                 labels: Sequence[str] | None = None) -> Path:
    """Write ``report.md``, ``layer_weights.png`` and ``layerwise.png`` for ``runs`` into ``out_dir``.

    Args:
        runs: run folders (or results.json files).
        reference: label of the reference run for relative improvements (default: the first).
        labels: names to show (default: each model's name; duplicates get their run folder's name).
    """
    docs = [load_run(r) for r in runs]
    if not docs:
        raise ReportError("no runs given")
    if labels:
        if len(labels) != len(docs):
            raise ReportError(f"{len(labels)} labels for {len(docs)} runs")
        for d, lab in zip(docs, labels):
            d["label"] = lab
    else:
        names = [_label(d) for d in docs]
        for d, n in zip(docs, names):
            d["label"] = Path(d["run"]).name if names.count(n) > 1 else n
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(docs, reference))
    plot_layer_weights(docs, out / "layer_weights.png")
    plot_layerwise(docs, out / "layerwise.png")
    return out / "report.md"

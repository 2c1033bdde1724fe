"""``jooci demo --seeds 0 1 2``: the demo once per seed, and one summary across the seeds.

One demo is one draw: a fresh corpus, fresh initialisations, fresh crops and masks. Its paired
bootstrap intervals resample the test items only, so they leave out the randomness of pretraining,
which at the demo's scale can be as large as the differences it reports. Several seeds show how
much of a difference survives a new draw.

Layout: ``DIR/seed-K/`` is a whole demo (``jooci demo --out DIR/seed-K --seed K``, reused when
finished); ``DIR/report/report.md`` is the summary: every model's mean ± standard deviation over
the seeds, JOOCI − baseline per seed with each seed's paired-bootstrap verdict, how many seeds
JOOCI won and lost per task, a paired plot, and a verdict in words.

The verdict over the seeds (a fixed rule; see docs/evaluation.md): on each task, the mean of the
per-seed differences JOOCI − baseline with a 95 % Student-t interval over the seeds. JOOCI is
better (worse) on a task when that interval excludes 0 on its side (the baseline's side), else
the task is within noise. The interval's spread is the seeds' own, so it holds pretraining and
test-set randomness both; it needs two seeds and is wide with few (t = 3.18 for four). Beside it,
the test-sampling interval of the same mean with each seed's items resampled within that seed
(pretraining held fixed).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from jooci.demo.common import CONTENT_TASKS, CONTROL, OTHER_TASKS, TASKS, duration
from jooci.demo.pipeline import run_demo
from jooci.demo.report import credit_sentences

SIGN = {"better": "b", "worse": "w", "same": "·"}


def run_demo_seeds(out: str | Path, seeds: list[int], **kwargs: Any) -> Path:
    """Run (or resume) the demo for every seed in ``out/seed-K`` and write the summary report."""
    out = Path(out)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {seeds}")
    t0 = time.perf_counter()
    folders = {}
    for i, seed in enumerate(seeds):
        print(f"\n######## seed {seed} ({i + 1}/{len(seeds)}) -> {out / f'seed-{seed}'}", flush=True)
        run_demo(out / f"seed-{seed}", seed=seed, **kwargs)
        folders[seed] = out / f"seed-{seed}"
    report = write_seed_summary(out, folders)
    print(f"\nsummary over {len(seeds)} seeds: {report}\n(all seeds, this run: {duration(time.perf_counter() - t0)})")
    return report


def load_results(folder: Path) -> dict[str, dict]:
    """{model label: results.json} of one seed's demo, in the demo's order (fbank, baseline, jooci, ablations)."""
    from jooci.superb.report import load_run

    eval_dir = folder / "eval"
    order = ["fbank", "baseline", "jooci"]
    found = sorted(p.name for p in eval_dir.iterdir() if (p / "results.json").is_file()) if eval_dir.is_dir() else []
    labels = [x for x in order if x in found] + [x for x in found if x not in order]
    if "baseline" not in labels or "jooci" not in labels:
        raise FileNotFoundError(f"{folder}: no finished demo evaluation (eval/baseline and eval/jooci)")
    return {x.replace("_", " "): load_run(eval_dir / x) for x in labels}


def seed_table(docs: dict[int, dict[str, dict]]) -> dict[str, Any]:
    """Everything the summary shows, as data (also written as ``summary.json``).

    Returns {"seeds", "models": {label: {task: {"values", "mean", "sd"}}}, "differences": {task:
    {"values", "verdicts", "higher_is_better", "mean", "sd", "better", "worse", "same", "interval",
    "verdict", "pooled"}}} where a difference is JOOCI − baseline in the metric's unit, ``verdicts``
    holds each seed's paired-bootstrap verdict (None for results without per-item records),
    ``interval`` the 95 % t-interval of the mean over the seeds and ``verdict`` what it says
    (both None for one seed), and ``pooled`` the stratified test-sampling interval of the mean
    ({"low", "high"}; None when a seed has no per-item records). With the demo's control in every
    seed (``CONTROL``), ``control`` holds the same entries for JOOCI − the control."""
    seeds = sorted(docs)
    labels = [x for x in docs[seeds[0]] if all(x in docs[s] for s in seeds)]
    models: dict[str, dict[str, Any]] = {}
    for label in labels:
        models[label] = {}
        for task in TASKS:
            values = [docs[s][label]["tasks"].get(task, {}).get("value") for s in seeds]
            if any(v is None for v in values):
                continue
            models[label][task] = {"values": values, "mean": statistics.fmean(values),
                                   "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    out = {"seeds": seeds, "models": models, "differences": differences(docs, "jooci", "baseline")}
    if all(CONTROL in docs[s] for s in seeds):
        out["control"] = differences(docs, "jooci", CONTROL)
    return out


def differences(docs: dict[int, dict[str, dict]], a: str, b: str) -> dict[str, Any]:
    """Per task: model ``a`` − model ``b`` over the seeds (the entries :func:`seed_table` documents)."""
    from jooci.superb.metrics import METRICS, seed_interval, stratified_paired_bootstrap
    from jooci.superb.report import compare, interval_verdict

    seeds = sorted(docs)
    diffs: dict[str, Any] = {}
    for task in TASKS:
        pairs = [(docs[s][a]["tasks"].get(task), docs[s][b]["tasks"].get(task)) for s in seeds]
        if any(j is None or r is None for j, r in pairs):
            continue
        values, verdicts = [], []
        for j, r in pairs:
            c = compare(j, r)
            values.append(j["value"] - r["value"])
            verdicts.append(c["verdict"] if c else None)
        metric = pairs[0][0]["metric"]
        higher = METRICS[metric][0]
        interval = seed_interval(values) if len(values) > 1 else None
        items = [((j.get("extra") or {}).get("items"), (r.get("extra") or {}).get("items")) for j, r in pairs]
        pooled = None
        if all(x is not None and y is not None for x, y in items):
            p = stratified_paired_bootstrap(metric, items)
            pooled = {"low": p["low"], "high": p["high"]}
        diffs[task] = {"values": values, "verdicts": verdicts, "higher_is_better": higher,
                       "mean": statistics.fmean(values),
                       "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                       **{k: sum(v == k for v in verdicts) for k in ("better", "worse", "same")},
                       "interval": list(interval) if interval else None,
                       "verdict": interval_verdict(*interval, higher) if interval else None,
                       "pooled": pooled}
    return diffs


def seed_verdict(table: dict[str, Any]) -> str:
    """One paragraph: what the interval over the seeds says per task (the verdict), then how many
    single seeds JOOCI won and lost (a seed counts only where its paired interval excludes 0)."""
    n = len(table["seeds"])
    d = table["differences"]
    other = [t for t in OTHER_TASKS if t in d]
    content = [t for t in CONTENT_TASKS if t in d]
    if n < 2:
        head = ("**One seed: no verdict over seeds** (it needs two at least); the seed's own verdict is in "
                "its report.")
    else:
        def named(tasks: list[str], verdict: str) -> str:
            return ", ".join(t.upper() for t in tasks if d[t]["verdict"] == verdict) or "none"

        other_won = all(d[t]["verdict"] == "better" for t in other)
        content_lost = any(d[t]["verdict"] == "worse" for t in content)
        if other and other_won and not content_lost:
            head = (f"**Over {n} seeds JOOCI beat the baseline on every Other task (SID, ASV, ER) and lost no "
                    "Content task.**")
        elif not any(d[t]["verdict"] != "same" for t in other + content):
            head = f"**Over {n} seeds JOOCI and the baseline are within noise of each other on every task.**"
        elif not content_lost and not any(d[t]["verdict"] == "worse" for t in other):
            head = (f"**Over {n} seeds JOOCI beat the baseline on {named(other + content, 'better')} and lost no "
                    f"task; within noise: {named(other + content, 'same')}.**")
        else:
            head = (f"**Over {n} seeds JOOCI was worse than the baseline on {named(other + content, 'worse')}; "
                    f"better on {named(other + content, 'better')}.**")
    parts = []
    for t in other + content:
        unit = "points" if d[t]["higher_is_better"] else "points (lower is better)"
        iv = f" [{d[t]['interval'][0]:+.1f}, {d[t]['interval'][1]:+.1f}]" if d[t]["interval"] else ""
        parts.append(f"{t.upper()}: mean difference {d[t]['mean']:+.1f}{iv} {unit}; single seeds better in "
                     f"{d[t]['better']}, worse in {d[t]['worse']}, within noise in {d[t]['same']} of {n}")
    return (f"{head} " + "; ".join(parts) + ". The verdict over the seeds is the 95 % Student-t interval of the "
            "mean difference (in brackets): its spread is the seeds' own, so it holds the randomness of "
            "pretraining that one seed's test-set interval leaves out." + control_verdict(table))


def control_verdict(table: dict[str, Any]) -> str:
    """Sentences on JOOCI − the control (JOOCI with its Other encoder untrained) over the seeds: which
    Other tasks won against the baseline the Other encoder's training earned. Empty without the
    control or with one seed."""
    c, d = table.get("control"), table["differences"]
    if not c or len(table["seeds"]) < 2:
        return ""
    other = [t for t in OTHER_TASKS if t in c]
    parts = [f"{t.upper()} {c[t]['mean']:+.1f} [{c[t]['interval'][0]:+.1f}, {c[t]['interval'][1]:+.1f}] "
             f"{c[t]['verdict'].replace('same', 'within noise')}" for t in other]
    won = [t for t in other if d.get(t, {}).get("verdict") == "better"]
    return (" **Control** — JOOCI against the same JOOCI with its Other encoder untrained, over the seeds: "
            + "; ".join(parts) + "." + credit_sentences([t.upper() for t in won if c[t]["verdict"] != "better"],
                                                        [t.upper() for t in won if c[t]["verdict"] == "better"],
                                                        [t.upper() for t in other if c[t]["verdict"] == "worse"]))


def write_seed_summary(out: Path, folders: dict[int, Path]) -> Path:
    """``out/report/report.md`` (+ ``summary.json``, ``seeds.png``) across the seeds' demos."""
    from jooci.superb.report import TASK_TITLES

    docs = {s: load_results(f) for s, f in folders.items()}
    table = seed_table(docs)
    rdir = out / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "summary.json").write_text(json.dumps(table, indent=1))
    plot = plot_seed_pairs(table, rdir / "seeds.png")
    seeds = table["seeds"]
    tasks = [t for t in TASKS if t in table["differences"]]
    lines = [f"# jooci demo over {len(seeds)} seeds: JOOCI vs a HuBERT-style baseline on JOOCI-synth", "",
             seed_verdict(table), "", "## Mean ± standard deviation over the seeds", "",
             "| model | " + " | ".join(TASK_TITLES[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for label, row in table["models"].items():
        lines.append(f"| {label} | " + " | ".join(
            f"{row[t]['mean']:.2f} ± {row[t]['sd']:.2f}" if t in row else "n/a" for t in tasks) + " |")
    lines += ["", "## JOOCI − baseline over the seeds", "",
              "Mean of the per-seed differences, in each metric's unit, with two 95 % intervals: over the seeds "
              "(Student t; the verdict) and over the test items with pretraining held fixed (each seed's items "
              "resampled within that seed).", "",
              *_difference_table(table["differences"], tasks)]
    if "control" in table:
        c = table["control"]
        lines += ["", "## JOOCI − control over the seeds", "",
                  "The control is each seed's JOOCI with its Other encoder untrained (initialised from the seed; "
                  "frontend and Content as trained): what a second encoder gives the downstream without its "
                  "training. Same intervals as above.", "",
                  *_difference_table(c, [t for t in tasks if t in c])]
    lines += ["", "## JOOCI − baseline per seed", "",
              "In each metric's unit; b / w / · = that seed's paired bootstrap interval says better / worse / "
              "within noise.", "", "| seed | " + " | ".join(t.upper() for t in tasks) + " |",
              "|---|" + "---|" * len(tasks)]
    for i, s in enumerate(seeds):
        cells = []
        for t in tasks:
            d = table["differences"][t]
            v = d["verdicts"][i]
            cells.append(f"{d['values'][i]:+.2f} {SIGN.get(v, '?')}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["| wins / losses | " + " | ".join(
        f"{table['differences'][t]['better']} / {table['differences'][t]['worse']}" for t in tasks) + " |", "",
        f"![JOOCI and the baseline per seed]({plot.name})", "", "## Each seed's report", "",
        *[f"- seed {s}: [{(folders[s] / 'report' / 'report.md').relative_to(out)}]"
          f"(../{(folders[s] / 'report' / 'report.md').relative_to(out)})" for s in seeds], ""]
    (rdir / "report.md").write_text("\n".join(lines) + "\n")
    return rdir / "report.md"


def _difference_table(diffs: dict[str, Any], tasks: list[str]) -> list[str]:
    """Markdown rows of a differences table (``differences``' entries): mean, the interval over the
    seeds, its verdict and the test-sampling interval, one column per task."""
    from jooci.superb.report import VERDICT_WORDS

    def row(name: str, cell) -> str:
        return f"| {name} | " + " | ".join(cell(diffs[t]) for t in tasks) + " |"

    return ["| | " + " | ".join(t.upper() for t in tasks) + " |", "|---|" + "---|" * len(tasks),
            row("mean", lambda d: f"{d['mean']:+.2f}"),
            row("interval over seeds", lambda d: _span(d["interval"])),
            row("verdict", lambda d: VERDICT_WORDS.get(d["verdict"], "n/a (one seed)")),
            row("test-sampling interval", lambda d: _span(d["pooled"] and [d["pooled"]["low"], d["pooled"]["high"]]))]


def _span(interval: list[float] | None) -> str:
    return "n/a" if not interval else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"


def plot_seed_pairs(table: dict[str, Any], path: Path) -> Path:
    """One panel per task: the baseline and JOOCI per seed, a line joining each seed's pair."""
    from jooci.extras import require

    matplotlib = require("matplotlib")  # the plots extra
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jooci.superb.report import TASK_TITLES

    tasks = [t for t in TASKS if t in table["differences"]]
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks), 3.0), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        b, j = table["models"]["baseline"][t]["values"], table["models"]["jooci"][t]["values"]
        for s, (vb, vj) in enumerate(zip(b, j)):
            ax.plot([0, 1], [vb, vj], color="grey", lw=1, marker="o", ms=4, alpha=0.8)
        if "fbank" in table["models"] and t in table["models"]["fbank"]:
            ax.axhline(table["models"]["fbank"][t]["mean"], color="tab:green", ls=":", lw=1, label="fbank")
            ax.legend(fontsize=7)
        ax.set_xticks([0, 1], ["baseline", "JOOCI"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(TASK_TITLES[t], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

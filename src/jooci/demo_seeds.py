"""``jooci demo --seeds 0 1 2``: the demo once per seed, and one summary across the seeds.

One demo is one draw: a fresh corpus, fresh initialisations, fresh crops and masks. Its paired
bootstrap intervals resample the test items only, so they leave out the randomness of pretraining,
and at the demo's scale that randomness is as large as the differences it reports (session 3: the
same setting gave JOOCI − baseline ASV EER +0.4 on seed 0 and −4.4 on seed 1). Several seeds show
how much of a difference survives a new draw.

Layout: ``DIR/seed-K/`` is a whole demo (``jooci demo --out DIR/seed-K --seed K``, reused when
finished); ``DIR/report/report.md`` is the summary: every model's mean ± standard deviation over
the seeds, JOOCI − baseline per seed with each seed's paired-bootstrap verdict, how many seeds
JOOCI won and lost per task, a paired plot, and a verdict in words.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from jooci.demo import CONTENT_TASKS, OTHER_TASKS, TASKS, _duration, run_demo
from jooci.superb.metrics import METRICS

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
    print(f"\nsummary over {len(seeds)} seeds: {report}\n(all seeds, this run: {_duration(time.perf_counter() - t0)})")
    return report


def _load(folder: Path) -> dict[str, dict]:
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
    {"values", "verdicts", "higher_is_better", "mean", "sd", "better", "worse", "same"}}} where a difference is
    JOOCI − baseline in the metric's unit and a verdict is that seed's paired-bootstrap verdict
    (None for results without per-item records)."""
    from jooci.superb.report import compare

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
    diffs: dict[str, Any] = {}
    for task in TASKS:
        pairs = [(docs[s]["jooci"]["tasks"].get(task), docs[s]["baseline"]["tasks"].get(task)) for s in seeds]
        if any(j is None or b is None for j, b in pairs):
            continue
        values, verdicts = [], []
        for j, b in pairs:
            c = compare(j, b)
            values.append(j["value"] - b["value"])
            verdicts.append(c["verdict"] if c else None)
        diffs[task] = {"values": values, "verdicts": verdicts, "higher_is_better": METRICS[pairs[0][0]["metric"]][0],
                       "mean": statistics.fmean(values),
                       "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                       **{k: sum(v == k for v in verdicts) for k in ("better", "worse", "same")}}
    return {"seeds": seeds, "models": models, "differences": diffs}


def seed_verdict(table: dict[str, Any]) -> str:
    """One paragraph: in how many seeds JOOCI beat the baseline on each Other task, and whether it
    lost a Content task anywhere. Counts only seeds whose paired interval excludes 0."""
    n = len(table["seeds"])
    d = table["differences"]
    other = [t for t in OTHER_TASKS if t in d]
    content = [t for t in CONTENT_TASKS if t in d]
    all_won = other and all(d[t]["better"] == n for t in other)
    none_lost = not any(d[t]["worse"] for t in other)
    content_lost = [t.upper() for t in content if d[t]["worse"]]
    if all_won:
        head = f"**JOOCI beat the baseline on every Other task (SID, ASV, ER) in all {n} seeds.**"
    elif none_lost and any(d[t]["better"] for t in other):
        head = f"**JOOCI lost no Other task in {n} seeds, but did not win every one in every seed.**"
    else:
        head = f"**JOOCI did not consistently beat the baseline on the Other tasks over {n} seeds.**"
    head += (f" It lost a Content task in some seed ({', '.join(content_lost)})." if content_lost
             else " It lost no Content task in any seed.")
    parts = []
    for t in other + content:
        unit = "points" if d[t]["higher_is_better"] else "points (lower is better)"
        parts.append(f"{t.upper()}: better in {d[t]['better']}, worse in {d[t]['worse']}, within noise in "
                     f"{d[t]['same']} of {n}; mean difference {d[t]['mean']:+.1f} ± {d[t]['sd']:.1f} {unit}")
    return (f"{head} " + "; ".join(parts) + ". A seed counts as a win or a loss only where its paired test-set "
            "bootstrap interval excludes 0; the ± is the standard deviation over seeds, which also holds the "
            "randomness of pretraining that one seed's interval leaves out.")


def write_seed_summary(out: Path, folders: dict[int, Path]) -> Path:
    """``out/report/report.md`` (+ ``summary.json``, ``seeds.png``) across the seeds' demos."""
    from jooci.superb.report import TASK_TITLES

    docs = {s: _load(f) for s, f in folders.items()}
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


def plot_seed_pairs(table: dict[str, Any], path: Path) -> Path:
    """One panel per task: the baseline and JOOCI per seed, a line joining each seed's pair."""
    import matplotlib

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

"""``jooci evaluate``: a frozen upstream on the SUPERB-style tasks, one ``results.json`` per model.

The runner owns data and logging; a task owns its head and metric. Steps:

1. load the upstream (a jooci model folder, a Hugging Face transformers folder:
   :mod:`jooci.superb.hf`, or ``fbank``) and resolve every task's splits, checking labels and
   trial lists *before* any extraction;
2. extract the hidden states of every needed utterance once, into the on-disk cache (float16,
   one array per layer; reused by later runs and tasks);
3. per task: LR sweep x epochs on cached features, dev-set selection, test score; heads train on
   ``EvalConfig.device`` when it is a CUDA device, else on the CPU;
4. the layer-wise probes (PR, SID), ``results.json`` and ``layer_weights.png``.

``results.json`` is written (atomically) as each task and probe ends, with ``"complete": false``
and the tasks finished so far, and once more at the end with ``"complete": true``: a run killed
mid-way leaves a valid ``results.json`` holding what it finished.

A run killed mid-way keeps what it finished: the cache holds every extracted chunk, and each task
(and probe) writes its result to ``OUT/tasks/TASK.json`` (``probe-TASK.json``) as soon as it ends,
with a key over everything the result depends on (the model's fingerprint, the task's utterances,
labels and trials, its settings, seed, layer selection, thread count). Run again with the same
command, a task whose file holds the same key is taken from it instead of trained again (logged);
a changed setting trains it anew. Heads trained on a GPU add the device to the key (their results
differ from the CPU's in the last digits); on the CPU the key is as it always was.

Results are reproducible for a seed (same machine, same thread count): heads, batch order and
crops are seeded per task.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jooci.extras import available, missing_message
from jooci.fileio import atomic_write_json
from jooci.superb.cache import FeatureBank, extract_missing, load_upstream
from jooci.superb.data import DataFolder, TaskDataError, TaskSplits, read_lexicon, task_splits
from jooci.superb.featurizer import UpstreamInfo
from jooci.superb.metrics import EER_DEFINITION, P_TARGETS
from jooci.superb.tasks.common import FeatureView, TaskSettings, run_task

log = logging.getLogger(__name__)

RESULTS_VERSION = 1  # results.json's format; "complete" and "tasks_requested" were added within it
TASKS = ("pr", "asr", "sid", "asv", "er")
PROBE_TASKS = ("pr", "sid")


def default_settings() -> dict[str, TaskSettings]:
    """Per-task epochs and learning-rate sweeps, sized for seconds per task on a 2-core CPU with
    cached features (see docs/evaluation.md for the measurements behind them)."""
    return {
        "pr": TaskSettings(epochs=30, lrs=(2e-2, 1e-2), batch_frames=4000, eval_every=3),
        "asr": TaskSettings(epochs=20, lrs=(1e-2,), batch_frames=2000, eval_every=4),
        "sid": TaskSettings(epochs=60, lrs=(1e-2, 1e-3), batch_frames=4000, eval_every=5),
        "asv": TaskSettings(epochs=8, lrs=(3e-3,), batch_frames=4000, eval_every=2),
        "er": TaskSettings(epochs=60, lrs=(1e-2, 1e-3), batch_frames=4000, eval_every=5),
    }


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run.

    seed: seeds every head, batch order and crop. layers: "all", "content" or "other" hidden
    states in the weighted sum (default all: docs/evaluation.md E3). normalize: LayerNorm each state before
    the sum. tasks: per-task epochs / LR sweep / batch size. probes: tasks to run the layer-wise
    probe for (a subset of "pr", "sid"); probe_epochs: their epochs (dev-scored 3 times).
    cache_dir: feature cache (default ``<out>/cache``; share
    it between runs to extract once). batch_seconds: padded audio per extraction batch.
    lexicon: CMUdict-style file to derive PR phones from transcripts. er_fold: IEMOCAP session
    held out for ER. threads: torch threads for extraction (None: leave as is); head_threads:
    while heads train. Both default to 1: on a 2-core machine shared with another job, 2 threads
    made extraction 4x and head training up to 15x slower than 1 (thread hand-offs); on an idle
    machine 2 threads gain less than 2x. Set them higher on a dedicated many-core machine.
    max_skipped: share of the utterances whose audio may be unreadable (skipped, logged, counted,
    left out of the tasks) before the run stops naming them. device: where the upstream extracts
    features, and, when it is a CUDA device, where the task heads train (the probes stay on the
    CPU); any other device trains heads on the CPU.
    """

    seed: int = 0
    layers: str = "all"
    normalize: bool = False
    tasks: dict[str, TaskSettings] = field(default_factory=default_settings)
    probes: tuple[str, ...] = PROBE_TASKS
    probe_epochs: int = 15
    cache_dir: str | None = None
    batch_seconds: float = 16.0
    max_skipped: float = 0.05
    lexicon: str | None = None
    er_fold: int = 1
    device: str = "cpu"
    threads: int | None = 1
    head_threads: int | None = 1
    progress: bool = True
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _data_folders(data: str | os.PathLike | dict[str, str | os.PathLike], tasks: list[str]) -> dict[str, DataFolder]:
    if isinstance(data, dict):
        missing = [t for t in tasks if t not in data]
        if missing:
            raise TaskDataError(f"no data folder given for task(s) {', '.join(missing)}")
        folders: dict[str, DataFolder] = {}
        by_path: dict[str, DataFolder] = {}
        for t in tasks:
            key = str(Path(data[t]).resolve())
            folders[t] = by_path.setdefault(key, DataFolder(data[t]))
        return folders
    folder = DataFolder(data)
    return {t: folder for t in tasks}


def _build_task(name: str, view: FeatureView, splits: TaskSplits, settings: TaskSettings, info_layers: int,
                dim: int, normalize: bool):
    # One literal table from task name to its class (imported here: only the tasks asked for load).
    from jooci.superb.tasks.asr import ASRTask
    from jooci.superb.tasks.asv import ASVTask
    from jooci.superb.tasks.er import ERTask
    from jooci.superb.tasks.pr import PRTask
    from jooci.superb.tasks.sid import SIDTask

    cls = {"pr": PRTask, "asr": ASRTask, "sid": SIDTask, "asv": ASVTask, "er": ERTask}[name]
    return cls(view, splits, settings, info_layers, dim, normalize)


def _available(splits: TaskSplits, bank: FeatureBank, task: str) -> TaskSplits:
    """Drop utterances whose audio could not be read during extraction (logged)."""
    parts = {}
    for s in ("train", "dev", "test"):
        utts = getattr(splits, s)
        kept = [u for u in utts if u in bank]
        if len(kept) < len(utts):
            log.warning("%s: %d %s utterance(s) left out (unreadable audio, see the cache index.json)",
                        task, len(utts) - len(kept), s)
        if not kept:
            raise TaskDataError(f"{task}: no readable {s} utterance ({splits.sources.get(s, s)})")
        parts[s] = kept
    trials, dev_trials = splits.trials, splits.dev_trials
    if trials is not None:
        have = {u.id for u in parts["test"]}
        trials = [t for t in trials if t[1] in have and t[2] in have]
        have_dev = {u.id for u in parts["dev"]}
        dev_trials = [t for t in (dev_trials or []) if t[1] in have_dev and t[2] in have_dev]
    return TaskSplits(parts["train"], parts["dev"], parts["test"], trials, dev_trials, splits.sources)


def evaluate(model: str | os.PathLike | nn.Module, data: str | os.PathLike | dict[str, str | os.PathLike],
             tasks: list[str] | tuple[str, ...] = TASKS, out_dir: str | os.PathLike = "runs/eval",
             config: EvalConfig | None = None) -> dict[str, Any]:
    """Evaluate a frozen upstream on SUPERB-style tasks; writes and returns ``results.json``'s content.

    Args:
        model: ``"fbank"``, a jooci model folder, a Hugging Face transformers folder
            (``HubertModel`` / ``WavLMModel`` / ``Wav2Vec2Model`` written by ``save_pretrained``:
            :mod:`jooci.superb.hf`), or a loaded JOOCI / HuBERTBaseline (kept frozen: only its
            features are read, in eval mode).
        data: a manifest folder for every task, or {task: folder} (e.g. LibriSpeech for pr/asr,
            VoxCeleb1 for sid/asv, IEMOCAP for er).
        tasks: any of "pr", "asr", "sid", "asv", "er".
        out_dir: gets ``results.json`` (rewritten as each task ends, module docstring),
            ``layer_weights.png``, ``tensorboard/`` (and ``cache/`` unless ``config.cache_dir`` is set).
        config: :class:`EvalConfig` (defaults if None).

    Raises:
        TaskDataError: a task's data is missing, lacks its labels, or names unknown utterances.
        ValueError: an unknown task or layer selection, a layer selection the model has no
            states for, or a ``model`` folder that is neither a jooci nor a supported transformers
            folder (:class:`jooci.superb.hf.UpstreamError`).
    """
    cfg = config or EvalConfig()
    tasks = list(dict.fromkeys(tasks))
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown or tasks}; choose from {', '.join(TASKS)}")
    bad_probes = [p for p in cfg.probes if p not in PROBE_TASKS]
    if bad_probes:
        raise ValueError(f"probes must be among {', '.join(PROBE_TASKS)}, got {bad_probes}")
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _evaluate(model, data, tasks, Path(out_dir), cfg)
    finally:
        torch.set_num_threads(threads_before)


def _evaluate(model: str | os.PathLike | nn.Module, data: str | os.PathLike | dict[str, str | os.PathLike],
              tasks: list[str], out: Path, cfg: EvalConfig) -> dict[str, Any]:
    t_start = time.perf_counter()
    timings: dict[str, Any] = {}

    # every task's data and labels are checked before the model loads and the (long) extraction starts
    folders = _data_folders(data, tasks)
    lexicon = read_lexicon(cfg.lexicon) if cfg.lexicon else None
    splits = {t: task_splits(t, folders[t], seed=cfg.seed, lexicon=lexicon, er_fold=cfg.er_fold) for t in tasks}

    t0 = time.perf_counter()
    was_training = model.training if isinstance(model, nn.Module) else False
    try:
        module, info, fingerprint = load_upstream(model if not isinstance(model, os.PathLike) else str(model),
                                                  cfg.device)
        selected = info.select(cfg.layers)
        timings["load_s"] = round(time.perf_counter() - t0, 2)
        n_new, needed, cache_root, t0 = _extract(module, info, fingerprint, splits, out, cfg)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)  # a module handed in gets its mode back

    timings["extract_s"] = round(time.perf_counter() - t0, 2)
    timings["extracted_utterances"] = n_new
    timings["audio_minutes"] = round(sum(u.num_samples / u.sample_rate for u in
                                         {(u.path, u.num_samples): u for u in needed}.values()) / 60, 2)
    del module  # the upstream's work is done; tasks only read the cache (it cannot be updated)

    bank = FeatureBank(cache_root, list(range(len(info.layer_names))))
    extraction_threads = torch.get_num_threads()
    if cfg.head_threads:
        torch.set_num_threads(cfg.head_threads)
    model_doc = {"name": info.name, "kind": info.kind, "path": str(model) if not isinstance(model, nn.Module) else None,
                 "num_parameters": info.num_parameters, "layer_names": list(info.layer_names),
                 "n_content": info.n_content, "n_other": info.n_other, "dim": info.dim, "fingerprint": fingerprint}
    if info.reading is not None:
        model_doc["hf"] = dict(info.reading)

    def write(results: dict[str, Any], probes: dict[str, Any], complete: bool) -> dict[str, Any]:
        doc = {
            "format_version": RESULTS_VERSION,
            "complete": complete,
            "model": model_doc,
            "data": {t: str(folders[t].root) for t in tasks},
            "tasks_requested": list(tasks),
            "layer_selection": cfg.layers,
            "selected_layers": [info.layer_names[i] for i in selected],
            "eer_definition": EER_DEFINITION,
            "min_dcf_p_targets": list(P_TARGETS),
            "config": cfg.to_dict(),
            "tasks": results,
            "probes": probes,
            "timings": timings,
            "threads": {"extraction": extraction_threads, "heads": torch.get_num_threads()},
        }
        _write_json(out / "results.json", doc)
        return doc

    results, probes = _run_tasks(cfg, info, bank, splits, selected, out, timings, fingerprint,
                                 lambda r, p: write(r, p, complete=False))
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    doc = write(results, probes, complete=True)
    if results and not available("matplotlib"):
        log.warning("no layer_weights.png: %s", missing_message("matplotlib"))
    elif results:
        from jooci.superb.report import plot_layer_weights

        plot_layer_weights([doc], out / "layer_weights.png")
    return doc


def _extract(module: nn.Module, info: UpstreamInfo, fingerprint: str, splits: dict[str, TaskSplits], out: Path,
             cfg: EvalConfig) -> tuple[int, list, Path, float]:
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cfg.cache_dir or out / "cache") / fingerprint
    t0 = time.perf_counter()
    needed = [u for s in splits.values() for u in s.all()]
    n_new = extract_missing(module, info, cache_root, needed, cfg.batch_seconds, cfg.progress, cfg.max_skipped)
    return n_new, needed, cache_root, t0


def head_device(cfg: EvalConfig) -> str:
    """Where the task heads train: ``cfg.device`` when it is a CUDA device, else the CPU."""
    return cfg.device if torch.device(cfg.device).type == "cuda" else "cpu"


def _task_key(task: str, sp: TaskSplits, cfg: EvalConfig, fingerprint: str, selected: list[int]) -> str:
    """A hash of everything a task's result depends on (see the module docstring)."""
    doc = {"format_version": RESULTS_VERSION, "task": task, "model": fingerprint,
           "settings": _settings_key(cfg.tasks[task]), "seed": cfg.seed, "layers": selected,
           "normalize": cfg.normalize, "head_threads": cfg.head_threads,
           "utterances": {s: [dataclasses.asdict(u) for u in getattr(sp, s)] for s in ("train", "dev", "test")},
           "trials": sp.trials, "dev_trials": sp.dev_trials}
    if head_device(cfg) != "cpu":  # CPU keys stay those of earlier runs
        doc["head_device"] = str(torch.device(head_device(cfg)))
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _settings_key(settings: TaskSettings) -> dict[str, Any]:
    """A task's settings as its result key holds them; a default head width is left out, so keys
    of runs made before the field existed still match."""
    d = dataclasses.asdict(settings)
    if d.get("width") is None:
        d.pop("width", None)
    return d


def _saved(path: Path, key: str) -> dict[str, Any] | None:
    """The result saved at ``path`` by an earlier run, if it was computed for ``key``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # damaged: computed again (and rewritten)
        log.warning("%s: unreadable (%s: %s); computing it again", path, type(e).__name__, e)
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("result"), dict):
        log.info("%s: computed for other settings, data or model; computing it again", path)
        return None
    return doc["result"]


def _save(path: Path, key: str, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"key": key, "result": result}, indent=None)


def _run_tasks(cfg: EvalConfig, info: UpstreamInfo, bank: FeatureBank, splits: dict[str, TaskSplits],
               selected: list[int], out: Path, timings: dict[str, Any], fingerprint: str,
               done: Callable[[dict[str, Any], dict[str, Any]], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every task on cached features, then the probes; each result saved as it ends, and taken
    from that file instead of trained again when an earlier run saved it for the same key.
    ``done(results, probes)`` is called after each task and probe with those finished so far."""
    writer = None
    if cfg.tensorboard and not available("tensorboard"):
        log.warning("no TensorBoard events: %s", missing_message("tensorboard"))
    elif cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    names = [info.layer_names[i] for i in selected]
    results: dict[str, Any] = {}
    task_objs: dict[str, Any] = {}
    timings["tasks_s"] = {}
    timings["reused"] = []
    for t in splits:
        t0 = time.perf_counter()
        sp = _available(splits[t], bank, t)
        key = _task_key(t, sp, cfg, fingerprint, selected)
        path = out / "tasks" / f"{t}.json"
        saved = _saved(path, key)
        if saved is not None:
            results[t] = saved
            task_objs[t] = (sp, float(saved["lr"]), key)
            timings["tasks_s"][t] = 0.0
            timings["reused"].append(t)
            log.info("%s: test %s %.2f (dev %.2f, lr %g), kept from an earlier run (%s)", t, saved["metric"],
                     saved["value"], saved["dev_value"], saved["lr"], path)
            done(results, {})
            continue
        view = FeatureView(bank, cfg.normalize, selected)
        task = _build_task(t, view, sp, cfg.tasks[t], len(selected), info.dim, cfg.normalize)
        result, _ = run_task(task, cfg.tasks[t], cfg.seed, names, (len(sp.train), len(sp.dev), len(sp.test)), writer,
                             device=head_device(cfg))
        results[t] = dataclasses.asdict(result)
        results[t]["sources"] = sp.sources
        _save(path, key, results[t])
        task_objs[t] = (sp, result.lr, key)
        timings["tasks_s"][t] = round(time.perf_counter() - t0, 2)
        log.info("%s: test %s %.2f (dev %.2f, lr %g) in %.1f s", t, result.metric, result.value, result.dev_value,
                 result.lr, timings["tasks_s"][t])
        done(results, {})

    probes = _run_probes(cfg, info, bank, splits, task_objs, timings, out, lambda p: done(results, p))
    if writer is not None:
        writer.close()
    return results, probes


def _run_probes(cfg: EvalConfig, info: UpstreamInfo, bank: FeatureBank, splits: dict[str, TaskSplits],
                task_objs: dict[str, Any], timings: dict[str, Any], out: Path,
                done: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    from jooci.superb.probe import probe_classifier, probe_pr
    from jooci.superb.tasks.pr import PRTask
    from jooci.superb.tasks.sid import SIDTask

    probes: dict[str, Any] = {}
    all_layers = list(range(len(info.layer_names)))
    view = FeatureView(bank, cfg.normalize, all_layers)
    timings["probes_s"] = {}
    for p in cfg.probes:
        if p not in splits:
            continue  # a probe needs its task's data; it runs only when the task was asked for
        t0 = time.perf_counter()
        sp, lr, task_key = task_objs[p]
        key = hashlib.sha256(f"{task_key} probe {cfg.probe_epochs} {lr!r}".encode()).hexdigest()
        path = out / "tasks" / f"probe-{p}.json"
        saved = _saved(path, key)
        if saved is not None:
            probes[p] = saved
            timings["probes_s"][p] = 0.0
            timings["reused"].append(f"probe-{p}")
            log.info("%s probe: kept from an earlier run (%s)", p, path)
            done(probes)
            continue
        settings = dataclasses.replace(cfg.tasks[p], epochs=cfg.probe_epochs,
                                       eval_every=max(1, cfg.probe_epochs // 3))
        if p == "pr":
            task = PRTask(view, sp, settings, len(all_layers), info.dim, cfg.normalize)
            probes[p] = probe_pr(task, len(all_layers), settings, lr, cfg.seed)
        else:
            task = SIDTask(view, sp, settings, len(all_layers), info.dim, cfg.normalize)
            probes[p] = probe_classifier(task, len(all_layers), settings, lr, cfg.seed)
        probes[p]["layer_names"] = list(info.layer_names)
        _save(path, key, probes[p])
        timings["probes_s"][p] = round(time.perf_counter() - t0, 2)
        done(probes)
    return probes


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_json(path, doc, indent=1)


def summary_table(doc: dict[str, Any]) -> str:
    """A short markdown table of one run."""
    lines = [f"{doc['model']['name']} ({doc['model']['kind']}), layers: {doc['layer_selection']}"
             + ("" if doc.get("complete", True) else " (incomplete: not every task finished)"), "",
             "| task | metric | test | test 95% interval | dev | lr | seconds |", "|---|---|---|---|---|---|---|"]
    for t, r in doc["tasks"].items():
        ci = (r.get("extra") or {}).get("ci95")
        interval = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"
        lines.append(f"| {t} | {r['metric']} | {r['value']:.2f} | {interval} | {r['dev_value']:.2f} | {r['lr']:g} "
                     f"| {r['seconds']} |")
    if "asv" in doc["tasks"]:
        dcf = doc["tasks"]["asv"]["extra"]["min_dcf"]
        lines.append("\nASV minDCF: " + ", ".join(f"{k} {v:.4f}" for k, v in dcf.items()))
        lines.append(f"EER: {doc['eer_definition']}")
    return "\n".join(lines)

"""Where is the speaker (or style) information a SID (ER) head could use?

For one finished demo folder (``jooci demo --out DIR``), a linear probe (standardised features,
logistic regression, C chosen on the task's dev split: ``jooci.superb.verify.linear_probe``) is trained on the train split of the SID
task (``--task er``: the ER task, labels = speaking style) and scored on its test split, for
utterance-level features from:

- the log-mel statistics (mean, mean + std), no learning;
- the RDINO teacher's embedding and JOOCI's Other embedding (the Other encoder's pooled output);
- every hidden state of JOOCI and the baseline, pooled by mean (what SUPERB's SID head sees) and
  by mean + std (what an x-vector-style head sees).

Usage: ``python experiments/sid-diagnostic/sid_diagnostic.py runs/demo4/seed-0 [more folders] --out FILE.json [--task er]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from jooci import hub
from jooci.audio import SAMPLE_RATE
from jooci.superb.data import DataFolder, task_splits
from jooci.superb.verify import embed_utterances, fbank_embedder, linear_probe, mean_std_pool, teacher_embedder

SILENCE = torch.zeros(1, SAMPLE_RATE), torch.tensor([SAMPLE_RATE])  # one second, to read a model's shapes


def all_layers(folder: Path):
    """An embedder of every hidden state's mean + std (and the model's own embedding, if any)."""
    model = hub.load(folder, map_location="cpu").eval()

    def embed(wav, lengths):
        out = model.extract_features(wav, lengths)
        parts = [mean_std_pool(h.float(), out.lengths) for h in out.hidden_states]
        if out.embedding is not None:
            parts.append(out.embedding.float())
        return torch.cat(parts, dim=-1)

    width = model.extract_features(*SILENCE).hidden_states[0].shape[-1]
    return embed, width, model


def probe_splits(x: dict, y: dict) -> dict:
    return {**linear_probe(x, y), "dim": int(x["train"].shape[1])}


def diagnose(run: Path, task: str = "sid") -> dict:
    corpus = run / "corpus"
    splits = task_splits(task, DataFolder(corpus))
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    utts = [u for p in parts.values() for u in p]
    labels = {n: np.array([u.speaker if task == "sid" else u.style for u in p]) for n, p in parts.items()}

    def probe(emb: dict, sl=slice(None)) -> dict:
        x = {n: torch.stack([emb[u.id][sl] for u in p]).numpy() for n, p in parts.items()}
        return probe_splits(x, labels)

    out = {}
    fb = embed_utterances(fbank_embedder(), utts)
    out["log-mel mean"] = probe(fb, slice(0, 80))
    out["log-mel mean + std"] = probe(fb, slice(None))
    out["teacher embedding"] = probe(embed_utterances(teacher_embedder(run / "pretrain" / "teacher" / "final"), utts))
    for name, folder in (("baseline", run / "pretrain" / "baseline"), ("jooci", run / "pretrain" / "final")):
        embed, width, model = all_layers(folder)
        emb = embed_utterances(embed, utts)
        n_layers = len(model.extract_features(*SILENCE).hidden_states)
        names = model.hidden_state_names() if hasattr(model, "hidden_state_names") else [str(i) for i in range(n_layers)]
        for i in range(n_layers):
            base = 2 * width * i
            out[f"{name} {names[i]} mean"] = probe(emb, slice(base, base + width))
            out[f"{name} {names[i]} mean + std"] = probe(emb, slice(base, base + 2 * width))
        if 2 * width * n_layers < next(iter(emb.values())).shape[0]:
            out[f"{name} Other embedding"] = probe(emb, slice(2 * width * n_layers, None))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--task", choices=("sid", "er"), default="sid")
    args = p.parse_args(argv)
    results = {}
    for run in args.runs:
        with torch.no_grad():
            results[str(run)] = diagnose(run, args.task)
        print(f"## {run}")
        for k, v in results[str(run)].items():
            print(f"{k:32s} dev {v['dev']:6.2f}  test {v['test']:6.2f}  (C={v['C']}, dim {v['dim']})", flush=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

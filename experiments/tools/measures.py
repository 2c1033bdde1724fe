"""The three dev-set measures of a speaker embedding that the phase-1 and teacher experiments
decide on (test figures are stored beside them; no choice is made on them):

- ``sid``: linear SID probe (``jooci.superb.verify.sid_probe``: SID train split, C chosen on SID dev);
- ``style``: the same probe with ER's labels on the ER splits (speaking style, held-out speakers);
- ``eer_dev``: cosine-scored EER on the corpus's held-out dev-speaker trials (``trials_dev.txt``).
"""

from __future__ import annotations

from pathlib import Path


def style_probe(source: str, corpus: Path, device: str = "cpu") -> dict:
    """Linear probe of speaking style (ER labels) on ``source``'s utterance embedding."""
    import numpy as np
    import torch

    from jooci.superb.data import DataFolder, task_splits
    from jooci.superb.verify import embed_utterances, embedder, linear_probe

    splits = task_splits("er", DataFolder(corpus))
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    emb = embed_utterances(embedder(source, device=device), [u for p in parts.values() for u in p])
    x = {n: torch.stack([emb[u.id] for u in p]).double().numpy() for n, p in parts.items()}
    y = {n: np.array([u.style for u in p]) for n, p in parts.items()}
    return linear_probe(x, y)


def measure(source: str, corpus: Path, device: str = "cpu") -> dict:
    from jooci.superb.verify import sid_probe, verify

    return {"sid": sid_probe(source, corpus, device=device), "style": style_probe(source, corpus, device),
            "eer_dev": verify(source, corpus, trials="dev", device=device).eer}

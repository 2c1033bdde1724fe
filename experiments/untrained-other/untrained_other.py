"""How much of JOOCI's result comes from what phases 1-2 taught its Other encoder?

At demo scale an *untrained* Other encoder already holds more linear speaker and style information
than a trained one (``../teacher-variants/``: SID probe dev 89.4 against 81.1).
So a JOOCI that beats the baseline on an Other task could owe that to the extra features of a
second encoder rather than to its training. This script takes each demo folder's JOOCI and
replaces its Other encoder with an untrained one: the same architecture, initialised from the
demo's seed. Frontend and Content stay exactly as trained; in JOOCI, Content never reads the Other
encoder. The model is evaluated on all five tasks like the demo's (``eval/jooci_untrained-other``),
so ``jooci demo --seeds`` summaries and ``retrain_phases.py --summary`` pick the row up.

Usage::

    python experiments/untrained-other/untrained_other.py runs/demo4/seed-{0,1,2,3}
    python experiments/tools/retrain_phases.py runs/demo4/seed-{0,1,2,3} --name untrained-other --summary FILE.json

(``jooci demo`` now evaluates this control itself, as ``jooci untrained-other``.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "untrained-other"


def untrained_other(final: Path, out: Path, seed: int) -> Path:
    """``final`` (a JOOCI model folder) with its Other encoder re-initialised from ``seed``, saved to ``out``."""
    from jooci.demo import untrained_other_twin

    return untrained_other_twin(final, out, seed)


def main(argv: list[str] | None = None) -> int:
    import torch

    from jooci.demo import TASKS
    from jooci.superb.runner import EvalConfig, evaluate

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demos", nargs="+", type=Path, help="finished jooci demo folders")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    for demo in args.demos:
        corpus = demo / "corpus"
        seed = json.loads((corpus / "synth.json").read_text())["config"]["seed"]
        model = untrained_other(demo / "pretrain" / "final", demo / "ablations" / NAME / "model", seed)
        ev = demo / "eval" / f"jooci_{NAME}"
        t0 = time.perf_counter()
        if not (ev / "results.json").exists():
            evaluate(str(model), corpus, TASKS, ev, EvalConfig(seed=seed, cache_dir=str(demo / "eval" / "cache"),
                                                               device="cpu"))
        tasks = json.loads((ev / "results.json").read_text())["tasks"]
        print(json.dumps({"demo": str(demo), "seconds": round(time.perf_counter() - t0, 1),
                          "test": {t: tasks[t]["value"] for t in TASKS if t in tasks},
                          "dev": {t: tasks[t]["dev_value"] for t in TASKS if t in tasks}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

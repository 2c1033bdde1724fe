"""Properties (a)-(c) of a JOOCI-synth corpus with sessions, by the rule in this folder's README.

Judged on the data only (no JOOCI or baseline model is trained here):

- (a) cosine EER of the log-mel mean + std (``jooci verify --model fbank``) on the ASV test
  trials: at least 20 %;
- (b) a speaker model trained with the ``train`` split's speaker labels (the small preset's
  teacher architecture, the recipe of ``../oracle-teacher/``: cross-entropy of its prototype
  scores against the speaker, 16 × 3 s crops; 1,200 steps by the README's amendment, the recipe's
  300 with ``--steps 300``) against the fbank floor: SID through
  the harness's SID task (``jooci evaluate --tasks sid``, both upstreams through the same head)
  at least 10 points higher, and cosine ASV EER at least 5 points lower;
- (c) SID: at least 1,921 test utterances (those the harness's SID task scores), all from sessions
  that no other split holds
  (the disagreement between (b)'s two SID results recorded beside it); ASV: at least 40
  held-out speakers, 20,000 trials, 90 % of the target trials across sessions, and the 95 %
  half-width of the supervised model's EER by the two-way bootstrap over held-out speakers
  (``jooci verify --speaker-interval``; a non-target trial is kept as often as the product of its
  two speakers' draws, a target trial as often as its speaker's) at most 2 points.

Usage::

    python experiments/demo-corpus/measure_corpus.py CORPUS --out DIR [--steps 1200]

Writes ``DIR/properties.json`` (every figure and each property's verdict) and prints a table.
The supervised model is saved to ``DIR/supervised/final`` and reused on a rerun with the same steps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

ORACLE = Path(__file__).resolve().parents[1] / "oracle-teacher"
SID_TEST_MIN = 1921
ASV_SPEAKERS_MIN = 40
ASV_TRIALS_MIN = 20000
CROSS_SESSION_MIN = 0.9
HALF_WIDTH_MAX = 2.0
FBANK_EER_MIN = 20.0
SID_MARGIN = 10.0
EER_MARGIN = 5.0


def counts(corpus: Path) -> dict:
    """The data side of (c): SID test utterances and their sessions, ASV speakers and trials."""
    from jooci.data.manifest import read_manifest

    def utts(split):
        return read_manifest(corpus / f"{split}.jsonl")

    trials = [line.split() for line in (corpus / "trials.txt").read_text().splitlines() if line.strip()]
    named = {x for _, a, b in trials for x in (a, b)}
    test = utts("test")
    heldout = {u.speaker for u in test if u.id in named}
    session = {u.id: (u.custom or {}).get("session") for u in test}
    sid_test = [u for u in test if u.speaker not in heldout]
    train_sessions = {(u.custom or {}).get("session") for split in ("pretrain", "train", "dev")
                      for u in utts(split)}
    targets = [(a, b) for y, a, b in trials if y == "1"]
    cross = sum(session[a] != session[b] for a, b in targets)
    per_speaker = Counter(u.speaker for u in sid_test)
    return {"sid_test_utterances": len(sid_test), "sid_speakers": len(per_speaker),
            "sid_test_in_train_sessions": sum(session[u.id] in train_sessions for u in sid_test),
            "sid_train_utterances": len(utts("train")),
            "asv_speakers": len(heldout), "asv_trials": len(trials), "asv_target_trials": len(targets),
            "cross_session_target_share": round(cross / max(1, len(targets)), 4)}


def sid(model: str, corpus: Path, out: Path, seed: int) -> dict:
    from jooci.superb import EvalConfig, evaluate

    doc = evaluate(model, corpus, tasks=["sid"], out_dir=out, config=EvalConfig(seed=seed, probes=()))
    return doc["tasks"]["sid"]


def measure(corpus: Path, out: Path, *, steps: int = 1200, seed: int = 0) -> dict:
    from jooci.models.speaker import speaker_config
    from jooci.superb.verify import verify

    if str(ORACLE) not in sys.path:
        sys.path.insert(0, str(ORACLE))
    from oracle_teacher import train_oracle

    out.mkdir(parents=True, exist_ok=True)
    c = counts(corpus)
    fbank_asv = verify("fbank", corpus, speaker_interval=True).to_dict()
    final = train_oracle(corpus, out / "supervised", speaker_config("small"), steps=steps, seed=seed,
                         splits=("train",))
    sup_asv = verify(str(final), corpus, speaker_interval=True, label="supervised").to_dict()
    fbank_sid = sid("fbank", corpus, out / "eval-fbank", seed)
    sup_sid = sid(str(final), corpus, out / "eval-supervised", seed)
    a_items, b_items = fbank_sid["extra"]["items"], sup_sid["extra"]["items"]
    if not len(a_items) == len(b_items) == c["sid_test_utterances"]:
        raise ValueError(f"the SID task scored {len(a_items)} / {len(b_items)} test utterances, the manifests "
                         f"hold {c['sid_test_utterances']} of seen speakers")
    disagree = sum(x != y for x, y in zip(a_items, b_items)) / max(1, len(a_items))
    lo, hi = sup_asv.get("ci95_speakers") or (None, None)
    half = None if lo is None else (hi - lo) / 2
    props = {
        "a": {"fbank_cosine_eer": fbank_asv["eer"], "threshold": FBANK_EER_MIN,
              "met": fbank_asv["eer"] >= FBANK_EER_MIN},
        "b": {"fbank_sid": round(fbank_sid["value"], 2), "supervised_sid": round(sup_sid["value"], 2),
              "sid_margin": round(sup_sid["value"] - fbank_sid["value"], 2),
              "fbank_eer": fbank_asv["eer"], "supervised_eer": sup_asv["eer"],
              "eer_margin": round(fbank_asv["eer"] - sup_asv["eer"], 2),
              "met": sup_sid["value"] - fbank_sid["value"] >= SID_MARGIN and fbank_asv["eer"] - sup_asv["eer"] >= EER_MARGIN},
        "c": {**c, "sid_disagreement": round(disagree, 4),
              "sid_mcnemar_half_width": round(100 * 1.96 * math.sqrt(disagree / max(1, len(a_items))), 2),
              "supervised_eer_ci95_speakers": [lo, hi], "supervised_eer_half_width": None if half is None else round(half, 2),
              "met": (c["sid_test_utterances"] >= SID_TEST_MIN and c["sid_test_in_train_sessions"] == 0
                      and c["asv_speakers"] >= ASV_SPEAKERS_MIN and c["asv_trials"] >= ASV_TRIALS_MIN
                      and c["cross_session_target_share"] >= CROSS_SESSION_MIN
                      and half is not None and half <= HALF_WIDTH_MAX)},
    }
    doc = {"corpus": str(corpus), "synth": json.loads((corpus / "synth.json").read_text())["config"],
           "supervised_steps": steps, "seed": seed, "properties": props,
           "fbank_verify": fbank_asv, "supervised_verify": sup_asv,
           "verdict": "meets (a)-(c)" if all(p["met"] for p in props.values()) else
           "does not meet " + ", ".join(f"({k})" for k, p in props.items() if not p["met"])}
    (out / "properties.json").write_text(json.dumps(doc, indent=1))
    return doc


def table(doc: dict) -> str:
    a, b, c = (doc["properties"][k] for k in "abc")
    yes = {True: "met", False: "**not met**"}
    half = "–" if c["supervised_eer_half_width"] is None else f"{c['supervised_eer_half_width']:.2f}"
    return "\n".join([
        "| property | measured | bar | verdict |", "|---|---|---|---|",
        f"| (a) fbank cosine EER | {a['fbank_cosine_eer']:.2f} % | ≥ {FBANK_EER_MIN:g} % | {yes[a['met']]} |",
        f"| (b) SID, supervised − fbank | {b['supervised_sid']:.2f} − {b['fbank_sid']:.2f} = {b['sid_margin']:+.2f} | ≥ +{SID_MARGIN:g} | |",
        f"| (b) ASV EER, fbank − supervised | {b['fbank_eer']:.2f} − {b['supervised_eer']:.2f} = {b['eer_margin']:+.2f} | ≥ +{EER_MARGIN:g} | {yes[b['met']]} |",
        f"| (c) SID test utterances (in train sessions) | {c['sid_test_utterances']} ({c['sid_test_in_train_sessions']}) | ≥ {SID_TEST_MIN} (0) | |",
        f"| (c) SID disagreement, McNemar half-width | {100 * c['sid_disagreement']:.1f} %, {c['sid_mcnemar_half_width']:.2f} points | | |",
        f"| (c) ASV speakers / trials / cross-session targets | {c['asv_speakers']} / {c['asv_trials']} / {100 * c['cross_session_target_share']:.1f} % | ≥ {ASV_SPEAKERS_MIN} / {ASV_TRIALS_MIN} / {100 * CROSS_SESSION_MIN:g} % | |",
        f"| (c) supervised EER half-width (speakers) | {half} | ≤ {HALF_WIDTH_MAX:g} | {yes[c['met']]} |",
        "", f"Verdict: {doc['verdict']}."])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1200,
                   help="supervised speaker model's steps (default 1200, the README's amendment; the oracle recipe: 300)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    doc = measure(args.corpus, args.out, steps=args.steps, seed=args.seed)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

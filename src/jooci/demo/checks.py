"""The demo's own measurements beyond ``jooci evaluate``: the control model (JOOCI with its Other
encoder untrained) and the speaker check (each model's own embedding on the ASV trials)."""

from __future__ import annotations

import json
from pathlib import Path

from jooci.demo.common import UNTRAINED
from jooci.fileio import atomic_dir, atomic_write_text


def untrained_other_twin(final: Path, out: Path, seed: int) -> Path:
    """The control: the JOOCI model in ``final`` with its Other encoder untrained (initialised from
    ``seed``), saved to ``out`` (kept when it is already there for the same ``final``)."""
    from jooci.superb.verify import untrained_reference

    mark = {"from": str(final), "fingerprint": fingerprint(str(final)), "seed": seed}
    if (out / "model.safetensors").is_file() and (out / "untrained-other.json").is_file() \
            and json.loads((out / "untrained-other.json").read_text()) == mark:
        return out
    with atomic_dir(out) as tmp:
        untrained_reference(str(final), tmp, seed)
        (tmp / "untrained-other.json").write_text(json.dumps(mark, indent=1))
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
    (``jooci.superb.verify.untrained_speaker_folder``): how much the teacher's training gave it."""
    from jooci.superb.verify import sid_probe, teacher_targets, verify

    sources = {"log-mel mean + std (no learning)": "fbank", **({UNTRAINED: str(untrained)} if untrained else {}),
               "RDINO teacher": str(teacher), **{f"{k} Other embedding": str(v) for k, v in joocis.items()}}
    done = {r["source"]: r for r in json.loads(path.read_text())} if path.exists() else {}
    rows = []
    for name, src in sources.items():
        mark = fingerprint(src)
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
        atomic_write_text(path, json.dumps(kept, indent=1))  # an interrupted write never leaves a broken file
    return rows


def fingerprint(source: str) -> str:
    """``source`` plus the size and modification time of its weights (or config): a model
    retrained in the same folder gets a new fingerprint."""
    folder = Path(source)
    for name in ("model.safetensors", "config.json"):
        if (folder / name).is_file():
            st = (folder / name).stat()
            return f"{source}|{name}|{st.st_size}|{st.st_mtime_ns}"
    return source


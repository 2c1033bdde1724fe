"""Manifests: one JSON record per utterance, plus fairseq's TSV manifests and label files.

A jooci manifest is a JSONL file, one :class:`Utterance` per line::

    {"id": "s03-0042", "path": "wav/shard_000/s03-0042.wav", "num_samples": 43520,
     "sample_rate": 16000, "speaker": "s03", "style": "happy", "text": "the cat sat",
     "words": ["the", "cat", "sat"], "phones": ["DH", "AH", "K", "AE", "T", "S", "AE", "T"],
     "alignment": [["sil", 0, 800], ["DH", 800, 1700], ...], "split": "train"}

Only ``id``, ``path`` and ``num_samples`` are required. Fields jooci does not read (a corpus's own
metadata, another tool's annotations) are kept in :attr:`Utterance.custom` and written back as they
came, never refused; reading a manifest that has them logs one line naming them. ``num_samples`` and ``alignment`` count
samples of the file as stored, at ``sample_rate`` (fairseq's convention for ``num_samples``).
A relative ``path`` is relative to the manifest's folder, so a corpus folder can be moved whole.

Reading validates: duplicate ids, missing files and (optionally) durations that do not match the
audio are collected and reported together in one :class:`ManifestError` that names the manifest,
the first problems and how many there are in all, so a user fixes a corpus in one pass.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from jooci.audio import SAMPLE_RATE, AudioError, audio_info
from jooci.fileio import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

MAX_LISTED = 10
"""How many problems a :class:`ManifestError` spells out before summarising."""


class ManifestError(Exception):
    """A manifest or label file that cannot be used; the message lists the problems."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{self.path}: {len(self.problems)} problem(s):\n  {shown}{tail}")


@dataclass
class Utterance:
    """One utterance of a corpus. All fields but ``id``, ``path`` and ``num_samples`` are optional."""

    id: str
    path: str
    num_samples: int
    sample_rate: int = SAMPLE_RATE
    speaker: str | None = None
    style: str | None = None  # speaking style or emotion label (the ER target)
    text: str | None = None
    words: list[str] | None = None
    phones: list[str] | None = None  # ARPAbet phone sequence, no silences (the PR target)
    alignment: list[tuple[str, int, int]] | None = None  # (phone or "sil", start, end) in samples
    split: str | None = None
    custom: dict[str, Any] | None = None  # fields jooci does not read, kept and written back as they came

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        extra = d.pop("custom", None) or {}
        clash = sorted(set(extra) & _READ)
        if clash:
            raise ValueError(f"utterance {self.id!r}: custom field(s) {', '.join(clash)} shadow jooci's own")
        d.update(extra)
        if self.alignment is not None:
            d["alignment"] = [list(seg) for seg in self.alignment]
        return json.dumps(d, ensure_ascii=False)


_FIELDS = {f.name for f in fields(Utterance)}
_READ = _FIELDS - {"custom"}  # what a record's keys mean to jooci; any other key goes to ``custom``
_REQUIRED = ("id", "path", "num_samples")


def resolve(utt: Utterance, root: str | os.PathLike) -> Path:
    """Absolute path of ``utt``'s audio; relative paths are taken from ``root``."""
    p = Path(utt.path)
    return p if p.is_absolute() else Path(root) / p


def read_manifest(
    path: str | os.PathLike,
    *,
    check_files: bool = True,
    check_durations: bool = True,
    tolerance: int = 0,
) -> list[Utterance]:
    """Read and validate a JSONL manifest.

    Relative audio paths are resolved against the manifest's folder, so the returned records hold
    absolute paths.

    Args:
        path: the ``.jsonl`` file.
        check_files: report audio files that do not exist.
        check_durations: read each file's header and report a ``num_samples`` or ``sample_rate``
            that does not match it (one header read per file: about half a minute for the
            280k files of LibriSpeech 960 h; turn off for repeated reads of a checked corpus).
        tolerance: accepted ``num_samples`` difference, in samples.

    Raises:
        ManifestError: listing malformed lines, missing fields, duplicate ids, missing files and
            wrong durations (the first ten, and the count).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, ["manifest file not found"])
    root = path.parent.resolve()
    utts: list[Utterance] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    custom_fields: set[str] = set()
    with_custom = 0
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    utt = _from_dict(json.loads(line))
                except (json.JSONDecodeError, ValueError, TypeError, RecursionError) as e:
                    problems.append(f"line {lineno}: {e}")
                    continue
                if utt.id in seen:
                    problems.append(f"line {lineno}: duplicate id {utt.id!r} (first on line {seen[utt.id]})")
                    continue
                seen[utt.id] = lineno
                utt.path = str(resolve(utt, root))
                utts.append(utt)
                if utt.custom:
                    with_custom += 1
                    custom_fields.update(utt.custom)
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    if check_files or check_durations:
        problems += _check_audio(utts, check_durations, tolerance)
    if problems:
        raise ManifestError(path, problems)
    if with_custom:
        log.info("%s: %d of %d utterance(s) carry field(s) jooci does not read (%s): kept as "
                 "Utterance.custom and written back", path, with_custom, len(utts), ", ".join(sorted(custom_fields)))
    return utts


def write_manifest(
    utts: Iterable[Utterance], path: str | os.PathLike, *, relative_to: str | os.PathLike | None = None
) -> Path:
    """Write a JSONL manifest atomically. Audio paths under ``relative_to`` (default: the
    manifest's folder) are stored relative to it, others absolute; a relative path in ``utts`` is
    taken as relative to the current directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = (Path(relative_to) if relative_to is not None else path.parent).resolve()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for utt in utts:
            p = Path(utt.path).resolve()  # in memory, a relative path is relative to the CWD
            try:
                p = p.relative_to(base)
            except ValueError:
                pass  # outside the manifest's folder: stored absolute
            rec = Utterance(**{**asdict(utt), "path": str(p)})
            f.write(rec.to_json() + "\n")
    return path


def _from_dict(d: dict) -> Utterance:
    if not isinstance(d, dict):
        raise ValueError("a record must be a JSON object")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}" + (f" (id {d['id']!r})" if "id" in d else ""))
    unknown = set(d) - _READ
    if unknown:
        d = {**{k: v for k, v in d.items() if k in _READ}, "custom": {k: d[k] for k in sorted(unknown)}}
    if not isinstance(d["id"], str) or not d["id"]:
        raise ValueError(f"id must be a non-empty string, got {d['id']!r}")
    if not isinstance(d["path"], str) or not d["path"]:
        raise ValueError(f"path must be a non-empty string, got {d['path']!r} (id {d['id']!r})")
    if not isinstance(d["num_samples"], int) or isinstance(d["num_samples"], bool) or d["num_samples"] < 0:
        raise ValueError(f"num_samples must be a non-negative integer, got {d['num_samples']!r} (id {d['id']!r})")
    rate = d.get("sample_rate", SAMPLE_RATE)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {rate!r} (id {d['id']!r})")
    if "alignment" in d and d["alignment"] is not None:
        d = {**d, "alignment": [_segment(seg, d["id"]) for seg in d["alignment"]]}
    return Utterance(**d)


def _segment(seg, utt_id: str) -> tuple[str, int, int]:
    if not (isinstance(seg, list) and len(seg) == 3 and isinstance(seg[0], str)
            and isinstance(seg[1], int) and isinstance(seg[2], int) and 0 <= seg[1] <= seg[2]):
        raise ValueError(f"alignment segment {seg!r} is not [phone, start, end] with 0 <= start <= end "
                         f"(id {utt_id!r})")
    return (seg[0], seg[1], seg[2])


def _check_audio(utts: list[Utterance], durations: bool, tolerance: int) -> list[str]:
    problems = []
    for utt in utts:
        if not durations:
            if not os.path.exists(utt.path):
                problems.append(f"{utt.id}: audio file not found: {utt.path}")
            continue
        try:
            info = audio_info(utt.path)
        except AudioError as e:
            problems.append(f"{utt.id}: {e}")
            continue
        if info.sample_rate != utt.sample_rate:
            problems.append(f"{utt.id}: sample_rate {utt.sample_rate} in the manifest, "
                            f"{info.sample_rate} in {utt.path}")
        elif abs(info.num_samples - utt.num_samples) > tolerance:
            problems.append(f"{utt.id}: num_samples {utt.num_samples} in the manifest, "
                            f"{info.num_samples} in {utt.path}")
    return problems


# ---------------------------------------------------------------------------------------------
# fairseq interchange: TSV manifests (root line, then relpath<TAB>num_samples) and label files.


def read_fairseq_tsv(path: str | os.PathLike, *, check_files: bool = True) -> list[Utterance]:
    """Read a fairseq ``train.tsv``-style manifest.

    The first line is the audio root; each further line is ``relpath<TAB>num_samples``. Ids are the
    relative paths without extension (fairseq has no ids); sample rates are taken as 16 kHz.
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, ["manifest file not found"])
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    if not lines:
        raise ManifestError(path, ["empty file: a fairseq manifest starts with the audio root line"])
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = path.parent / root
    utts, problems, seen = [], [], {}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        count = parts[1].strip() if len(parts) == 2 else ""
        if not (count.isascii() and count.isdigit()):
            problems.append(f"line {lineno}: expected 'relpath<TAB>num_samples', got {line!r}")
            continue
        rel = parts[0]
        try:
            uid = str(Path(rel).with_suffix(""))
        except ValueError:  # "", "/", "..": no file name
            problems.append(f"line {lineno}: {rel!r} is not the path of a file")
            continue
        if uid in seen:
            problems.append(f"line {lineno}: duplicate entry {rel!r} (first on line {seen[uid]})")
            continue
        seen[uid] = lineno
        utts.append(Utterance(id=uid, path=str(root / rel), num_samples=int(count)))
    if check_files:
        problems += _check_audio(utts, durations=False, tolerance=0)
    if problems:
        raise ManifestError(path, problems)
    return utts


def write_fairseq_tsv(utts: Sequence[Utterance], path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Write a fairseq TSV manifest with ``root`` as its first line; every audio path must lie under it."""
    path, root = Path(path), Path(root).resolve()
    lines, problems = [str(root)], []
    for utt in utts:
        try:
            rel = Path(utt.path).resolve().relative_to(root)
        except ValueError:
            problems.append(f"{utt.id}: {utt.path} is not under the root {root}")
            continue
        lines.append(f"{rel}\t{utt.num_samples}")
    if problems:
        raise ManifestError(path, problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_label_file(path: str | os.PathLike) -> list[list[int]]:
    """Read a fairseq label file: one line of space-separated integers per utterance.

    Raises ManifestError naming each line that is empty or holds something other than
    non-negative integers (an empty line is an utterance with no labels: fairseq would train on it
    silently misaligned).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, ["label file not found"])
    labels, problems = [], []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                toks = line.split()
                if not toks:
                    problems.append(f"line {lineno}: no labels")
                    labels.append([])
                    continue
                try:
                    row = [int(t) for t in toks]
                except ValueError:
                    problems.append(f"line {lineno}: not a line of integers: {line.strip()[:60]!r}")
                    continue
                if min(row) < 0:
                    problems.append(f"line {lineno}: negative label")
                elif max(row) > _INT64_MAX:
                    problems.append(f"line {lineno}: label beyond the int64 range")
                labels.append(row)
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    if problems:
        raise ManifestError(path, problems)
    return labels


_INT64_MAX = 2**63 - 1


def not_utf8(path: str | os.PathLike, e: UnicodeDecodeError) -> ManifestError:
    """The :class:`ManifestError` for a text file that is not UTF-8, naming its first such line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return ManifestError(path, [f"line {lineno}: not UTF-8 text ({bad.reason} at byte {bad.start} "
                                            f"of the line)"])
    return ManifestError(path, [f"not UTF-8 text ({e.reason})"])


def write_label_file(labels: Iterable[Sequence[int]], path: str | os.PathLike) -> Path:
    """Write one line of space-separated integers per utterance (fairseq's ``.km`` format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in labels:
            f.write(" ".join(str(int(x)) for x in row) + "\n")
    return path


__all__ = [
    "ManifestError", "Utterance", "read_manifest", "write_manifest", "resolve",
    "read_fairseq_tsv", "write_fairseq_tsv", "read_label_file", "write_label_file",
]

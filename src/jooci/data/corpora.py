"""Corpus scanners: LibriSpeech, VoxCeleb1 and IEMOCAP trees as they are distributed -> manifests.

Each scanner walks a corpus tree, reads every kept file's header (:func:`jooci.audio.audio_info`,
in a few threads) and returns :class:`~jooci.data.manifest.Utterance` records with absolute
paths, sorted by ``(split, id)``. :func:`prepare_corpus` writes one ``<split>.jsonl`` per split
(plus ``trials.txt`` for VoxCeleb1); ``jooci prepare {librispeech,voxceleb1,iemocap} --root R
--out D`` calls it.

Bad input (shared by all three)
    A missing root, no corpus folder under it, a malformed label file or a protocol file naming
    an utterance that is not there raise :class:`CorpusError` (a :class:`ManifestError`) naming the
    path and listing the problems. Per-utterance damage (a transcript line without audio, audio
    without a label, an unreadable or empty file) is a *skip*: counted, logged with the first few
    names, and fatal only past ``max_skip_fraction`` of the corpus (default 1 %: the real corpora
    have none, so more means a broken copy, not a few odd files).

LibriSpeech (``scan_librispeech``)
    ``root/<subset>/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` plus one
    ``SPEAKER-CHAPTER.trans.txt`` per chapter, lines ``SPEAKER-CHAPTER-UTT WORDS IN UPPER CASE``.
    ``root`` may be the ``LibriSpeech`` folder, its parent, or one subset folder. Subsets are the
    standard names (train-clean-100, ..., dev-clean-2, train-clean-5) found there, or those asked
    for. id = ``SPEAKER-CHAPTER-UTT``, speaker = ``SPEAKER``, split = subset name. **Text is
    lower-cased** (``"don't go"``; apostrophes kept): JOOCI-synth writes lower case, and WER must
    compare like with like, so every jooci transcript is lower case. ``words`` = ``text.split()``.

VoxCeleb1 (``scan_voxceleb1``)
    ``root/wav/idXXXXX/VIDEO/NNNNN.wav``; ``root`` may also be the folder holding the ``id*``
    folders, or hold several ``*/wav`` parts (``vox1_dev_wav/wav`` and ``vox1_test_wav/wav``, as
    s3prl expects). id = ``idXXXXX/VIDEO/NNNNN``, speaker = ``idXXXXX``; no text.

    VoxCeleb1 has two protocols that split it differently, so split names carry the protocol:

    - ``iden_split`` (``iden_split.txt``, lines ``1|2|3 idA/VIDEO/NNNNN.wav``; SUPERB SID, all
      1,251 speakers): ``sid_train`` / ``sid_dev`` / ``sid_test``. Files the list does not name
      are left out (counted, logged).
    - ``trials`` (``veri_test2.txt``, the cleaned VoxCeleb1-O list, or any list in that format or
      jooci's): every utterance of a speaker named in a trial is ``asv_test``, every other one
      ``asv_train`` (SUPERB ASV trains on the 1,211 VoxCeleb1-dev speakers). Trial speakers come
      from every line of the list, so a dropped trial never moves its speaker into training.
    - both: each file appears once per protocol (two records, same id, different split); ids are
      unique within a split, which is what a manifest requires.
    - neither: ``split`` is None (:func:`prepare_corpus` writes ``all.jsonl``).

    A protocol line naming an utterance that is missing (or unreadable) raises
    :class:`CorpusError` naming it; ``allow_missing=True`` turns that into a counted, logged drop
    (for a copy with only part of VoxCeleb1, e.g. only ``vox1_test_wav``).

    Trials: :func:`read_trials` reads VoxCeleb lists (``1 idA/V/00001.wav idB/W/00002.wav``) and
    jooci's own (``1 idA/V/00001 idB/W/00002``) alike, returning ids without extension;
    :func:`write_trials` writes jooci's format, ``<1|0> <id> <id>`` per line (what JOOCI-synth's
    ``trials.txt`` holds).

IEMOCAP (``scan_iemocap``)
    ``root/Session{1..5}/sentences/wav/<dialog>/<utt>.wav`` with labels in
    ``root/Session{N}/dialog/EmoEvaluation/<dialog>.txt`` (the ``[start - end]<TAB>utt<TAB>label
    <TAB>[V, A, D]`` lines; annotator lines and the Categorical/Attribute/Self-evaluation subfolders
    are ignored, as are macOS ``._*`` files) and optional transcripts in
    ``root/Session{N}/dialog/transcriptions/<dialog>.txt`` (``utt [start-end]: text``). ``root``
    may be ``IEMOCAP_full_release`` or its parent; any subset of the five sessions is accepted.
    As in SUPERB ER: 4 classes ``neu hap ang sad`` with ``exc`` merged into ``hap``; other labels
    (fru, sur, xxx, ...) are excluded with per-label counts logged. id = utterance name,
    style = the label code as IEMOCAP writes it (``"hap"``, not JOOCI-synth's ``"happy"``),
    speaker = session + the *utterance's* speaker gender (``Ses01F_impro01_M012`` -> ``Ses01M``:
    the dialog prefix names who wore the markers, the last part who speaks), split = ``Session1``
    .. ``Session5`` (SUPERB's 5-fold leave-one-session-out). Text is the transcript as written
    (case, punctuation and ``[LAUGHTER]`` kept; no ASR is scored on IEMOCAP); ``words`` unset.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from jooci.audio import MIN_SAMPLES, AudioError, AudioInfo, audio_info, resampled_length
from jooci.data.manifest import ManifestError, Utterance, not_utf8, write_manifest
from jooci.fileio import atomic_write_text
from jooci.progress import progress as progress_bar

log = logging.getLogger(__name__)

MAX_SKIP_FRACTION = 0.01
"""Default share of a corpus's utterances that may be skipped before a scan fails."""

MAX_LOGGED = 5
"""How many names a skip message spells out."""

_HEADER_THREADS = 8  # header reads are I/O bound (and libsndfile releases the GIL): threads help on NFS

LIBRISPEECH_SUBSETS = (
    "train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
    "test-clean", "test-other", "dev-clean-2", "train-clean-5",  # the last two: Mini LibriSpeech
)

SID_SPLITS = {"1": "sid_train", "2": "sid_dev", "3": "sid_test"}
"""``iden_split.txt`` set numbers -> jooci split names."""
ASV_TRAIN, ASV_TEST = "asv_train", "asv_test"

IEMOCAP_LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
"""Every categorical label IEMOCAP's EmoEvaluation files use (``xxx``: no majority)."""
IEMOCAP_SESSIONS = tuple(f"Session{i}" for i in range(1, 6))

_AUDIO_EXTENSIONS = (".wav", ".flac", ".m4a", ".ogg", ".mp3")

Trial = tuple[int, str, str]
"""``(label, enrol_id, test_id)``; label 1 = same speaker, 0 = different speakers."""


class CorpusError(ManifestError):
    """A corpus tree or protocol file that cannot be used; the message names the path and problems."""


# ---------------------------------------------------------------------------------------------
# Skips and header reads, shared by the scanners.


class _Skips:
    """Per-reason lists of skipped utterance names; fatal past a fraction of the corpus."""

    def __init__(self, corpus: str):
        self.corpus = corpus
        self.by_reason: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, name: str) -> None:
        self.by_reason[reason].append(name)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_reason.values())

    def lines(self) -> list[str]:
        out = []
        for reason, names in self.by_reason.items():
            more = f", ... ({len(names) - MAX_LOGGED} more)" if len(names) > MAX_LOGGED else ""
            out.append(f"{len(names)} {reason}: {', '.join(names[:MAX_LOGGED])}{more}")
        return out

    def check(self, total: int, max_fraction: float, root: Path) -> None:
        """Log the skips; raise when more than ``max_fraction`` of ``total`` were skipped."""
        if not self:
            return
        for line in self.lines():
            log.warning("%s: skipped %s", self.corpus, line)
        if len(self) > max_fraction * total:
            raise CorpusError(root, [
                *self.lines(),
                f"{len(self)} of {total} utterances skipped, more than max_skip_fraction="
                f"{max_fraction:g}: the copy of {self.corpus} looks incomplete or damaged "
                f"(fix it, or raise max_skip_fraction to use what is there)",
            ])


def _read_headers(paths: dict[str, Path], corpus: str, skips: _Skips, progress: bool = True) -> dict[str, AudioInfo]:
    """Header of every file in ``paths`` (id -> path); unreadable, empty or too short files (fewer
    samples than one CNN frame at 16 kHz) become skips naming the file. Only headers are read:
    damage inside the samples (NaN/Inf) is found by whatever decodes the file later."""
    def one(item: tuple[str, Path]) -> tuple[str, AudioInfo | None, str | None]:
        uid, p = item
        try:
            return uid, audio_info(p), None
        except AudioError as e:
            return uid, None, f"{p}: {e.reason}"

    infos: dict[str, AudioInfo] = {}
    with ThreadPoolExecutor(_HEADER_THREADS) as ex:
        results = ex.map(one, paths.items())
        for uid, info, err in progress_bar(results, total=len(paths), desc=f"{corpus} headers", unit="file",
                                           enabled=progress, leave=False):
            if info is None:
                skips.add("unreadable audio", f"{uid} ({err})")
            elif info.num_samples == 0:
                skips.add("empty audio", f"{uid} ({info.path})")
            elif resampled_length(info.num_samples, info.sample_rate) < MIN_SAMPLES:
                skips.add(f"audio shorter than one frame ({MIN_SAMPLES} samples at 16 kHz)",
                          f"{uid} ({info.path}: {info.num_samples} samples at {info.sample_rate} Hz)")
            else:
                infos[uid] = info
    return infos


def _root_dir(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise CorpusError(root, ["corpus folder not found" if not root.exists() else "not a folder"])
    return root


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")  # macOS AppleDouble "._x.wav" files sit beside real ones


def _check_fraction(max_skip_fraction: float) -> None:
    if not 0.0 <= max_skip_fraction <= 1.0:
        raise ValueError(f"max_skip_fraction must lie in [0, 1], got {max_skip_fraction}")


# ---------------------------------------------------------------------------------------------
# LibriSpeech


def scan_librispeech(
    root: str | os.PathLike,
    subsets: Sequence[str] | None = None,
    *,
    max_skip_fraction: float = MAX_SKIP_FRACTION,
    progress: bool = True,
) -> list[Utterance]:
    """Records of a LibriSpeech tree (see the module docstring for the layout).

    Args:
        root: the ``LibriSpeech`` folder, its parent, or a single subset folder.
        subsets: subset folder names to scan (default: every standard subset found).
        max_skip_fraction: share of utterances that may be skipped before the scan fails.
        progress: show the header-reading progress (plain log lines when stderr is not a terminal).

    Returns:
        one record per transcribed FLAC file, lower-case ``text`` and ``words``, split = subset.

    Raises:
        CorpusError: root or an asked-for subset missing, no subset found, or too many skips.
    """
    _check_fraction(max_skip_fraction)
    base, subsets = _librispeech_subsets(_root_dir(root), subsets)
    skips = _Skips("LibriSpeech")
    found: dict[str, tuple[Path, str, str]] = {}  # id -> (audio, text, subset)
    for subset in subsets:
        sub = base / subset
        audio = {p for p in sub.glob("*/*/*.flac") if _visible(p)}
        transcribed: set[Path] = set()
        for trans in sorted(sub.glob("*/*/*.trans.txt")):
            if not _visible(trans):
                continue
            for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
                parts = line.split(maxsplit=1)
                if not parts:
                    continue
                uid = parts[0]
                if len(parts) < 2:
                    skips.add("transcript lines without text", f"{trans.name}:{lineno} ({uid})")
                    continue
                path = trans.parent / f"{uid}.flac"
                if uid in found or path in transcribed:
                    skips.add("duplicate transcript lines", f"{trans.name}:{lineno} ({uid})")
                    continue
                transcribed.add(path)
                if path not in audio:
                    skips.add("transcript lines without audio", uid)
                    continue
                found[uid] = (path, parts[1], subset)
        for path in sorted(audio - transcribed):
            skips.add("audio files without a transcript line", f"{subset}/{path.stem}")
    if not found:
        raise CorpusError(base, [f"no transcribed utterances in {', '.join(subsets)}",
                                 *skips.lines()])
    total = len(found) + len(skips)  # every utterance seen: kept so far, or skipped already
    infos = _read_headers({uid: p for uid, (p, _, _) in found.items()}, "LibriSpeech", skips, progress)
    skips.check(total, max_skip_fraction, base)
    utts = []
    for uid, info in infos.items():
        path, text, subset = found[uid]
        words = text.lower().split()
        utts.append(Utterance(id=uid, path=str(path), num_samples=info.num_samples,
                              sample_rate=info.sample_rate, speaker=uid.split("-", 1)[0],
                              text=" ".join(words), words=words, split=subset))
    return _sorted(utts, "LibriSpeech", base)


def _librispeech_subsets(root: Path, subsets: Sequence[str] | None) -> tuple[Path, list[str]]:
    """The folder holding the subsets, and the subsets to scan."""
    if isinstance(subsets, str):  # "dev-clean" would otherwise be iterated letter by letter
        subsets = [subsets]
    bases = (root, root / "LibriSpeech")
    if subsets is None:
        for base in bases:
            found = [s for s in LIBRISPEECH_SUBSETS if (base / s).is_dir()]
            if found:
                return base, found
        if root.name in LIBRISPEECH_SUBSETS and any(root.glob("*/*/*.trans.txt")):
            return root.parent, [root.name]
        raise CorpusError(root, [f"no LibriSpeech subset folder ({', '.join(LIBRISPEECH_SUBSETS)}) "
                                 f"in {root} or {root / 'LibriSpeech'}"])
    if not subsets:
        raise ValueError("subsets is empty: pass None to scan every subset found")
    for base in bases:
        if any((base / s).is_dir() for s in subsets):
            missing = [str(base / s) for s in subsets if not (base / s).is_dir()]
            if missing:
                raise CorpusError(root, [f"subset folder not found: {m}" for m in missing])
            return base, list(dict.fromkeys(subsets))
    if root.name in subsets and len(subsets) == 1:
        return root.parent, [root.name]
    raise CorpusError(root, [f"subset folder not found: {root / s}" for s in subsets])


# ---------------------------------------------------------------------------------------------
# VoxCeleb1


def scan_voxceleb1(
    root: str | os.PathLike,
    trials: str | os.PathLike | None = None,
    iden_split: str | os.PathLike | None = None,
    *,
    allow_missing: bool = False,
    max_skip_fraction: float = MAX_SKIP_FRACTION,
    progress: bool = True,
) -> list[Utterance]:
    """Records of a VoxCeleb1 tree, split by the SID and/or ASV protocol (see the module docstring).

    Args:
        root: the folder holding ``wav/``, the ``wav`` folder itself, or a folder of ``*/wav`` parts.
        trials: an ASV trial list (``veri_test2.txt`` or jooci's ``trials.txt``); its speakers'
            utterances become ``asv_test``, the others ``asv_train``.
        iden_split: SUPERB SID's ``iden_split.txt``: splits ``sid_train``/``sid_dev``/``sid_test``.
        allow_missing: drop (count, log) protocol lines naming absent utterances instead of failing.
        max_skip_fraction: share of files that may be unreadable before the scan fails.

    Raises:
        CorpusError: root missing, no ``id*`` folders, a malformed protocol file, a protocol line
            naming an absent utterance (unless ``allow_missing``), or too many unreadable files.
    """
    return _scan_voxceleb1(root, trials, iden_split, allow_missing=allow_missing,
                           max_skip_fraction=max_skip_fraction, progress=progress)[0]


def _scan_voxceleb1(
    root: str | os.PathLike,
    trials: str | os.PathLike | None,
    iden_split: str | os.PathLike | None,
    *,
    allow_missing: bool,
    max_skip_fraction: float,
    progress: bool = True,
) -> tuple[list[Utterance], list[Trial] | None]:
    """:func:`scan_voxceleb1`, also returning the trials whose utterances are all present."""
    _check_fraction(max_skip_fraction)
    root = _root_dir(root)
    skips = _Skips("VoxCeleb1")
    files: dict[str, Path] = {}
    for wav_dir in _voxceleb_wav_dirs(root):
        for p in sorted(wav_dir.glob("id*/*/*.wav")):
            if not _visible(p) or not _SPEAKER_DIR.fullmatch(p.parent.parent.name):
                continue
            uid = f"{p.parent.parent.name}/{p.parent.name}/{p.stem}"
            if uid in files:
                skips.add("duplicate files (kept the first)", f"{uid} ({p})")
                continue
            files[uid] = p
    if not files:
        raise CorpusError(root, ["no .wav files under the idXXXXX/VIDEO/ folders"])

    # (id, split) pairs, one per protocol asked for.
    records: list[tuple[str, str | None]] = []
    missing: dict[Path, list[str]] = {}
    if iden_split is not None:
        iden_path = Path(iden_split)
        listed = _read_iden_split(iden_path)
        missing[iden_path] = [uid for uid in listed if uid not in files]
        records += [(uid, split) for uid, split in listed.items() if uid in files]
        unlisted = [uid for uid in files if uid not in listed]
        if unlisted:
            log.warning("VoxCeleb1: %d file(s) not in %s left out of the sid_* splits (first: %s)",
                        len(unlisted), iden_path, ", ".join(unlisted[:MAX_LOGGED]))
    trial_list = None
    if trials is not None:
        trials_path = Path(trials)
        trial_list = read_trials(trials_path)
        # Every speaker named in the list is a test speaker, even if its trials are dropped below:
        # a partial copy must never move a test speaker into training.
        test_speakers = {u.split("/", 1)[0] for _, a, b in trial_list for u in (a, b)}
        missing[trials_path] = list(dict.fromkeys(u for _, a, b in trial_list for u in (a, b)
                                                  if u not in files))
        records += [(uid, ASV_TEST if uid.split("/", 1)[0] in test_speakers else ASV_TRAIN)
                    for uid in files]
    if iden_split is None and trials is None:
        records = [(uid, None) for uid in files]
    for path, names in missing.items():
        _missing(path, names, "utterances", allow_missing)

    used = {uid for uid, _ in records}
    total = len(used) + len(skips)
    infos = _read_headers({uid: files[uid] for uid in files if uid in used}, "VoxCeleb1", skips, progress)
    skips.check(total, max_skip_fraction, root)
    if trial_list is not None:
        gone = list(dict.fromkeys(u for _, a, b in trial_list for u in (a, b)
                                  if u in files and u not in infos))
        _missing(Path(trials), gone, "utterances whose audio was skipped (see above)", allow_missing)
        n = len(trial_list)
        trial_list = [t for t in trial_list if t[1] in infos and t[2] in infos]
        if len(trial_list) < n:
            log.warning("VoxCeleb1: dropped %d of %d trials naming absent utterances", n - len(trial_list), n)
        if not trial_list:
            raise CorpusError(trials, ["no trial has both utterances in the corpus"])
    utts = []
    for uid, split in records:
        if uid in infos:
            info = infos[uid]
            utts.append(Utterance(id=uid, path=str(files[uid]), num_samples=info.num_samples,
                                  sample_rate=info.sample_rate, speaker=uid.split("/", 1)[0],
                                  split=split))
    return _sorted(utts, "VoxCeleb1", root), trial_list


_SPEAKER_DIR = re.compile(r"id\d+")


def _voxceleb_wav_dirs(root: Path) -> list[Path]:
    def has_speakers(d: Path) -> bool:
        return d.is_dir() and any(c.is_dir() and _SPEAKER_DIR.fullmatch(c.name) for c in d.iterdir())

    for cand in (root / "wav", root):
        if has_speakers(cand):
            return [cand]
    parts = [d for d in sorted(root.glob("*/wav")) if has_speakers(d)]  # vox1_dev_wav/wav, vox1_test_wav/wav
    if parts:
        return parts
    raise CorpusError(root, [f"no VoxCeleb1 speaker folders (idXXXXX) in {root / 'wav'}, {root} "
                             f"or {root}/*/wav"])


def _missing(path: Path, names: list[str], what: str, allow: bool) -> None:
    if not names:
        return
    if not allow:
        raise CorpusError(path, [f"{n}: listed here but not in the corpus" for n in names[:MAX_LOGGED * 2]]
                          + ([f"{len(names)} {what} in all (pass allow_missing=True / --allow-missing "
                              f"to drop them)"] if len(names) > MAX_LOGGED * 2 else []))
    log.warning("%s: %d %s not in the corpus, dropped (allow_missing): %s%s", path, len(names), what,
                ", ".join(names[:MAX_LOGGED]), ", ..." if len(names) > MAX_LOGGED else "")


def _read_iden_split(path: Path) -> dict[str, str]:
    """``iden_split.txt`` -> {id: sid split}, the lines' order kept."""
    if not path.is_file():
        raise CorpusError(path, ["iden_split file not found"])
    out: dict[str, str] = {}
    problems = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in SID_SPLITS:
            problems.append(f"line {lineno}: expected '1|2|3 idXXXXX/VIDEO/NNNNN.wav', got {line.strip()!r}")
            continue
        uid = _strip_audio_ext(parts[1])
        if out.get(uid, SID_SPLITS[parts[0]]) != SID_SPLITS[parts[0]]:
            problems.append(f"line {lineno}: {uid} listed in two sets")
            continue
        out[uid] = SID_SPLITS[parts[0]]
    if problems:
        raise CorpusError(path, problems)
    return out


def _strip_audio_ext(name: str) -> str:
    for ext in _AUDIO_EXTENSIONS:  # only audio extensions: an id may itself contain a dot
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Read an ASV trial list: ``<1|0> <utt> <utt>`` per line, utterances as ids or as paths.

    VoxCeleb lists (``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``) and jooci's
    (``1 id10270/x6uYqmx31kE/00001 ...``) read the same: audio extensions are stripped.

    Returns:
        ``[(label, enrol_id, test_id), ...]`` in file order.

    Raises:
        ManifestError: the file is missing, empty, or has malformed lines (all listed).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, ["trial list not found"])
    trials: list[Trial] = []
    problems = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            problems.append(f"line {lineno}: expected '<1|0> <utterance> <utterance>', got {line.strip()!r}")
            continue
        enrol, test = _strip_audio_ext(parts[1]), _strip_audio_ext(parts[2])
        if not enrol or not test:  # ".wav": an extension and no name
            problems.append(f"line {lineno}: an utterance without a name: {line.strip()!r}")
            continue
        trials.append((int(parts[0]), enrol, test))
    if not trials and not problems:
        problems.append("no trials in the file")
    if problems:
        raise ManifestError(path, problems)
    return trials


def write_trials(trials: Iterable[Trial], path: str | os.PathLike) -> Path:
    """Write an ASV trial list in jooci's format, ``<1|0> <id> <id>`` per line, atomically."""
    path = Path(path)
    lines = []
    for label, a, b in trials:
        if label not in (0, 1) or isinstance(label, bool):
            raise ValueError(f"trial label must be 0 or 1, got {label!r} ({a} {b})")
        if not a or not b or any(c.isspace() for c in a + b):
            raise ValueError(f"trial ids must be non-empty and without whitespace, got {a!r} {b!r}")
        lines.append(f"{label} {a} {b}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------------------------------------
# IEMOCAP

_EMO_LINE = re.compile(r"^\[[^\]]*\]\t(\S+)\t(\S+)\t")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[[^\]]*\]:\s?(.*)$")
_IEMOCAP_UTT = re.compile(r"^(Ses\d\d)[FM]_\S+_([FM])[^_]*$")


def scan_iemocap(
    root: str | os.PathLike,
    classes: Sequence[str] = ("neu", "hap", "ang", "sad"),
    merge_excited: bool = True,
    *,
    max_skip_fraction: float = MAX_SKIP_FRACTION,
    progress: bool = True,
) -> list[Utterance]:
    """Records of an IEMOCAP tree for emotion recognition (see the module docstring).

    Args:
        root: ``IEMOCAP_full_release`` (holding ``Session1``..``Session5``) or its parent.
        classes: labels to keep (IEMOCAP's codes); utterances of other labels are excluded.
        merge_excited: relabel ``exc`` as ``hap`` first, as SUPERB does.
        max_skip_fraction: share of kept utterances that may be skipped before the scan fails.

    Returns:
        one record per kept utterance: style = label, speaker = e.g. ``Ses01M``, split = session.

    Raises:
        ValueError: an unknown class, or ``exc`` asked for while it is merged into ``hap``.
        CorpusError: root or its sessions missing, a malformed EmoEvaluation line, too many skips.
    """
    _check_fraction(max_skip_fraction)
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of labels, got the string {classes!r}")
    unknown = [c for c in classes if c not in IEMOCAP_LABELS]
    if unknown or not classes:
        raise ValueError(f"unknown IEMOCAP class(es) {unknown or classes!r}; the labels are "
                         f"{', '.join(IEMOCAP_LABELS)}")
    if merge_excited and "exc" in classes:
        raise ValueError("'exc' is merged into 'hap' (merge_excited=True); pass merge_excited=False "
                         "to keep it as a class of its own")
    root = _root_dir(root)
    base = next((b for b in (root, root / "IEMOCAP_full_release")
                 if any((b / s).is_dir() for s in IEMOCAP_SESSIONS)), None)
    if base is None:
        raise CorpusError(root, [f"no IEMOCAP session folder (Session1..Session5) in {root} or "
                                 f"{root / 'IEMOCAP_full_release'}"])
    skips = _Skips("IEMOCAP")
    excluded: Counter[str] = Counter()
    # id -> (audio, style, speaker, session, text)
    found: dict[str, tuple[Path, str, str, str, str | None]] = {}
    problems: list[str] = []
    for session in (s for s in IEMOCAP_SESSIONS if (base / s).is_dir()):
        eval_dir = base / session / "dialog" / "EmoEvaluation"
        wav_dir = base / session / "sentences" / "wav"
        for d in (eval_dir, wav_dir):
            if not d.is_dir():
                raise CorpusError(d, ["folder not found (every IEMOCAP session has it)"])
        audio = {p.stem: p for p in wav_dir.glob("*/*.wav") if _visible(p)}
        labelled: set[str] = set()
        for emo in sorted(p for p in eval_dir.glob("*.txt") if _visible(p)):
            dialog = emo.stem
            texts = _read_transcripts(base / session / "dialog" / "transcriptions" / f"{dialog}.txt")
            for lineno, line in enumerate(emo.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if not line.startswith("["):
                    continue  # the header, annotator lines (C-E1: ..., A-F1: ...) and blank lines
                m = _EMO_LINE.match(line)
                who = _IEMOCAP_UTT.match(m.group(1)) if m else None
                if m is None or who is None or m.group(2) not in IEMOCAP_LABELS:
                    problems.append(f"{emo}:{lineno}: expected '[start - end]<TAB>SesNNx_..._xNNN"
                                    f"<TAB>label<TAB>[V, A, D]', got {line.strip()[:80]!r}")
                    continue
                uid, label = m.group(1), m.group(2)
                if uid in labelled:
                    problems.append(f"{emo}:{lineno}: {uid} labelled twice")
                    continue
                labelled.add(uid)
                if merge_excited and label == "exc":
                    label = "hap"
                if label not in classes:
                    excluded[label] += 1
                    continue
                path = wav_dir / dialog / f"{uid}.wav"
                if not path.is_file():
                    skips.add("labelled utterances without audio", uid)
                    continue
                found[uid] = (path, label, who.group(1) + who.group(2), session, texts.get(uid))
        for uid in sorted(set(audio) - labelled):
            skips.add("audio files without an EmoEvaluation line", uid)
    if problems:
        raise CorpusError(base, problems)
    if excluded:
        log.info("IEMOCAP: excluded %d utterance(s) of other classes (%s)", sum(excluded.values()),
                 ", ".join(f"{k} {v}" for k, v in excluded.most_common()))
    if not found:
        raise CorpusError(base, [f"no utterance of the classes {', '.join(classes)}", *skips.lines()])
    total = len(found) + len(skips)  # excluded classes are a choice, not damage: not counted
    infos = _read_headers({uid: f[0] for uid, f in found.items()}, "IEMOCAP", skips, progress)
    skips.check(total, max_skip_fraction, base)
    utts = []
    for uid, info in infos.items():
        path, label, speaker, session, text = found[uid]
        utts.append(Utterance(id=uid, path=str(path), num_samples=info.num_samples,
                              sample_rate=info.sample_rate, speaker=speaker, style=label,
                              text=text, split=session))
    return _sorted(utts, "IEMOCAP", base)


def _read_transcripts(path: Path) -> dict[str, str]:
    """{utterance: text} from a transcriptions file; {} when there is none (they are optional)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _sorted(utts: list[Utterance], corpus: str, root: Path) -> list[Utterance]:
    if not utts:
        raise CorpusError(root, [f"no usable {corpus} utterance (all were skipped or dropped; see the log)"])
    utts.sort(key=lambda u: (u.split or "", u.id))
    per_split = Counter(u.split for u in utts)
    counts = ", ".join(f"{k or 'no split'} {v}"
                       for k, v in sorted(per_split.items(), key=lambda kv: kv[0] or ""))
    log.info("%s: %d utterance(s) from %s (%s)", corpus, len(utts), root, counts)
    return utts


# ---------------------------------------------------------------------------------------------
# Manifests (what `jooci prepare` writes)

SCANNERS = {"librispeech": scan_librispeech, "voxceleb1": scan_voxceleb1, "iemocap": scan_iemocap}


def prepare_corpus(
    kind: str, root: str | os.PathLike, out_dir: str | os.PathLike, **options
) -> dict[str, Path]:
    """Scan a corpus and write one manifest per split, plus the trial list for VoxCeleb1.

    Args:
        kind: ``"librispeech"``, ``"voxceleb1"`` or ``"iemocap"``.
        root: the corpus folder, as its scanner takes it.
        out_dir: where ``<split>.jsonl`` (``all.jsonl`` for records without a split) and
            ``trials.txt`` go; audio paths under it are stored relative, others absolute.
        **options: keyword arguments of the scanner (``subsets``; ``trials``, ``iden_split``,
            ``allow_missing``; ``classes``, ``merge_excited``; ``max_skip_fraction``).

    Returns:
        {split: manifest path, ..., "trials": trial list path (VoxCeleb1 with ``trials`` only)}.

    Raises:
        ValueError: unknown kind or an option its scanner does not take.
        CorpusError: as the scanner.
    """
    if kind not in SCANNERS:
        raise ValueError(f"unknown corpus kind {kind!r}; choose one of {', '.join(SCANNERS)}")
    accepted = [p for p in inspect.signature(SCANNERS[kind]).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"option(s) {', '.join(unknown)} do not apply to {kind} "
                         f"(it takes {', '.join(accepted)})")
    trials = None
    if kind == "voxceleb1":
        utts, trials = _scan_voxceleb1(
            root, options.get("trials"), options.get("iden_split"),
            allow_missing=options.get("allow_missing", False),
            max_skip_fraction=options.get("max_skip_fraction", MAX_SKIP_FRACTION),
            progress=options.get("progress", True))
    else:
        utts = SCANNERS[kind](root, **options)
    out_dir = Path(out_dir)
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        groups[u.split or "all"].append(u)
    paths = {split: write_manifest(group, out_dir / f"{split}.jsonl") for split, group in groups.items()}
    if trials is not None:
        paths["trials"] = write_trials(trials, out_dir / "trials.txt")
    log.info("%s: wrote %s to %s", kind, ", ".join(p.name for p in paths.values()), out_dir)
    return paths


__all__ = [
    "CorpusError", "scan_librispeech", "scan_voxceleb1", "scan_iemocap", "read_trials", "write_trials",
    "prepare_corpus", "LIBRISPEECH_SUBSETS", "IEMOCAP_LABELS",
    "SID_SPLITS", "ASV_TRAIN", "ASV_TEST", "MAX_SKIP_FRACTION",
]

"""Which utterances each task trains, selects and tests on, for each corpus layout.

A data folder holds manifests named by split (``jooci synth`` / ``jooci prepare`` write them):

| layout | files | PR / ASR | SID | ASV | ER |
|---|---|---|---|---|---|
| JOOCI-synth (generic) | train, dev, test (+ trials.txt) | train / dev / test | train / dev / test of speakers seen in train | train + dev speakers, minus ~20 % kept as dev-trial speakers / trials.txt over test | train / dev / test of speakers not seen in train |
| LibriSpeech | train-clean-100 (or train-clean-5), dev-clean (or dev-clean-2), test-clean | as named | - | - | - |
| VoxCeleb1 | sid_train, sid_dev, sid_test; asv_train, asv_test + trials.txt | - | sid_* | asv_train (minus dev-trial speakers) / trials.txt over asv_test | - |
| IEMOCAP | Session1..Session5 | - | - | - | fold f: test Session f, dev a seeded 20 % of the other sessions, train the rest |

ASV has no dev split in SUPERB (s3prl picks the best test EER, which flatters); here a few
training speakers are held out and scored on trials among themselves, so model selection never
sees the test trials.

Bad input: a task whose splits are missing, whose manifests lack its labels, or whose trial list
names utterances the test manifest does not hold raises :class:`TaskDataError` naming the files
and what is missing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from jooci.data.corpora import Trial, read_trials
from jooci.data.manifest import ManifestError, Utterance, read_manifest

log = logging.getLogger(__name__)

LIBRI_TRAIN = ("train-clean-100", "train-clean-5", "train-clean-360", "train-other-500")
LIBRI_DEV = ("dev-clean", "dev-clean-2", "dev-other")
LIBRI_TEST = ("test-clean", "test-other")
SESSIONS = tuple(f"Session{i}" for i in range(1, 6))


class TaskDataError(ValueError):
    """A task cannot run on the given data; the message says which file lacks what."""


@dataclass
class TaskSplits:
    """Utterances of one task. ``trials``/``dev_trials``: ASV only. ``sources``: file names, for messages."""

    train: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]
    trials: list[Trial] | None = None
    dev_trials: list[Trial] | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def all(self) -> list[Utterance]:
        return self.train + self.dev + self.test


class DataFolder:
    """A folder of ``<split>.jsonl`` manifests (read once, lazily)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise TaskDataError(f"{self.root}: data folder not found")
        self.names = sorted(p.stem for p in self.root.glob("*.jsonl"))
        if not self.names:
            raise TaskDataError(f"{self.root}: no <split>.jsonl manifest in the folder")
        self._cache: dict[str, list[Utterance]] = {}

    def has(self, name: str) -> bool:
        return name in self.names

    def first(self, candidates: tuple[str, ...], task: str, role: str) -> str:
        for c in candidates:
            if self.has(c):
                return c
        raise TaskDataError(f"{self.root}: {task} needs a {role} manifest ({' or '.join(c + '.jsonl' for c in candidates)}); "
                            f"the folder has {', '.join(n + '.jsonl' for n in self.names)}")

    def read(self, name: str) -> list[Utterance]:
        if name not in self._cache:
            try:  # durations were checked when the corpus was prepared; files must still exist
                self._cache[name] = read_manifest(self.root / f"{name}.jsonl", check_durations=False)
            except ManifestError as e:
                raise TaskDataError(str(e)) from None
        return self._cache[name]

    def layout(self) -> str:
        """"synth" (train/dev/test), "librispeech", "voxceleb1" or "iemocap"."""
        if all(self.has(n) for n in ("train", "dev", "test")):
            return "synth"
        if any(self.has(n) for n in LIBRI_TRAIN + LIBRI_DEV + LIBRI_TEST):
            return "librispeech"
        if any(n.startswith(("sid_", "asv_")) for n in self.names):
            return "voxceleb1"
        if any(self.has(n) for n in SESSIONS):
            return "iemocap"
        raise TaskDataError(f"{self.root}: unknown layout (manifests {', '.join(self.names)}); expected "
                            "train/dev/test, LibriSpeech subsets, VoxCeleb1 sid_*/asv_* or IEMOCAP Session1..5")


def read_lexicon(path: str | Path) -> dict[str, list[str]]:
    """A CMUdict-style lexicon, ``WORD  PH1 PH2 ...`` per line -> {word (lower case): phones}.

    Stress digits are stripped (``AH0`` -> ``AH``); ``;;;`` comment lines are skipped; for a word
    with variants (``WORD(2)``) the first pronunciation is kept.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: lexicon not found")
    lex: dict[str, list[str]] = {}
    bad = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.startswith(";;;"):
            continue
        parts = line.split()
        if len(parts) < 2:
            bad.append(f"line {lineno}: {line.strip()!r}")
            continue
        word = parts[0].lower()
        if word.endswith(")") and "(" in word:
            word = word[: word.index("(")]
        lex.setdefault(word, [p.rstrip("012").upper() for p in parts[1:]])
    if bad or not lex:
        raise TaskDataError(f"{path}: not a 'WORD  PH1 PH2' lexicon: {'; '.join(bad[:5]) or 'no entries'}")
    return lex


def _require(utts: list[Utterance], attr: str, task: str, source: str, hint: str = "") -> None:
    missing = [u.id for u in utts if not getattr(u, attr)]
    if missing:
        raise TaskDataError(f"{source}: {task} needs the {attr!r} label, missing for {len(missing)} of "
                            f"{len(utts)} utterances (first: {', '.join(missing[:5])}){hint}")


def add_lexicon_phones(utts: list[Utterance], lexicon: dict[str, list[str]], source: str,
                       max_skip_fraction: float = 0.05) -> list[Utterance]:
    """Utterances with ``phones`` derived from ``words`` (or ``text``) through ``lexicon``; those
    with out-of-lexicon words are dropped, logged and counted (fatal past ``max_skip_fraction``)."""
    out, oov_utts, oov = [], 0, set()
    for u in utts:
        if u.phones:
            out.append(u)
            continue
        words = u.words or (u.text.lower().split() if u.text else None)
        if not words:
            out.append(u)  # no transcript: the label check reports it
            continue
        unknown = [w for w in words if w.lower() not in lexicon]
        if unknown:
            oov_utts += 1
            oov.update(unknown)
            continue
        phones = [p for w in words for p in lexicon[w.lower()]]
        out.append(Utterance(**{**u.__dict__, "phones": phones}))
    if oov_utts:
        log.warning("%s: %d utterance(s) dropped for out-of-lexicon words (e.g. %s)", source, oov_utts,
                    ", ".join(sorted(oov)[:5]))
        if oov_utts > max_skip_fraction * len(utts):
            raise TaskDataError(f"{source}: {oov_utts} of {len(utts)} utterances have words missing from the "
                                f"lexicon (more than {max_skip_fraction:.0%}); e.g. {', '.join(sorted(oov)[:10])}")
    return out


def _speaker_of(utts: list[Utterance], task: str, source: str) -> set[str]:
    _require(utts, "speaker", task, source)
    return {u.speaker for u in utts}  # type: ignore[misc]


def _rng_pick(items: list[str], fraction: float, minimum: int, seed: int, what: str) -> set[str]:
    rng = random.Random(f"{what}/{seed}")
    k = max(minimum, round(fraction * len(items)))
    return set(rng.sample(sorted(items), min(k, len(items))))


def _dev_trials(utts: list[Utterance], seed: int, max_trials: int = 2000) -> list[Trial]:
    """Balanced trials among ``utts``: same-speaker pairs (up to half) and as many different-speaker ones."""
    rng = random.Random(f"dev-trials/{seed}")
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker or "", []).append(u.id)
    target = [(a, b) for ids in by_spk.values() for i, a in enumerate(ids) for b in ids[i + 1:]]
    if len(target) > max_trials // 2:
        target = rng.sample(target, max_trials // 2)
    nontarget: set[tuple[str, str]] = set()
    tries = 0
    while len(nontarget) < len(target) and tries < 100 * max_trials:
        tries += 1
        a, b = rng.sample(utts, 2)
        if a.speaker != b.speaker:
            nontarget.add((a.id, b.id))
    return [(1, a, b) for a, b in target] + [(0, a, b) for a, b in sorted(nontarget)]


def check_trials(trials: list[Trial], utts: list[Utterance], trial_file: str, manifest: str) -> None:
    """Refuse a trial list naming utterances that ``utts`` does not hold (all named in the message)."""
    known = {u.id for u in utts}
    unknown = sorted({x for _, a, b in trials for x in (a, b) if x not in known})
    if unknown:
        raise TaskDataError(f"{trial_file}: {len(unknown)} utterance(s) named in the trials are not in {manifest}: "
                            f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    labels = {lab for lab, _, _ in trials}
    if labels != {0, 1}:
        raise TaskDataError(f"{trial_file}: ASV needs target (1) and non-target (0) trials, found only {labels}")


def task_splits(task: str, folder: DataFolder, *, seed: int = 0, lexicon: dict[str, list[str]] | None = None,
                er_fold: int = 1, asv_dev_fraction: float = 0.2) -> TaskSplits:
    """The train/dev/test utterances of ``task`` ("pr", "asr", "sid", "asv", "er") in ``folder``,
    with their labels checked (see the module docstring)."""
    layout = folder.layout()
    src = lambda n: str(folder.root / f"{n}.jsonl")  # noqa: E731
    if task in ("pr", "asr"):
        if layout == "synth":
            names = ("train", "dev", "test")
        elif layout == "librispeech":
            names = (folder.first(LIBRI_TRAIN, task, "training"), folder.first(LIBRI_DEV, task, "dev"),
                     folder.first(LIBRI_TEST, task, "test"))
        else:
            raise TaskDataError(f"{folder.root}: {task} needs transcribed speech (JOOCI-synth or LibriSpeech "
                                f"manifests); this is a {layout} folder ({', '.join(folder.names)})")
        parts = []
        for n in names:
            utts = folder.read(n)
            if task == "pr":
                if lexicon is not None:
                    utts = add_lexicon_phones(utts, lexicon, src(n))
                hint = "" if lexicon is not None else (
                    " (give a CMUdict-style lexicon to derive phones from the transcripts)"
                    if any(u.text or u.words for u in utts) else "")
                _require(utts, "phones", task, src(n), hint)
            else:
                _require(utts, "text", task, src(n))
            parts.append(utts)
        return TaskSplits(*parts, sources=dict(zip(("train", "dev", "test"), map(src, names))))
    if task == "sid":
        if layout == "synth":
            names = ("train", "dev", "test")
        elif layout == "voxceleb1":
            names = tuple(folder.first((f"sid_{r}",), task, r) for r in ("train", "dev", "test"))
        else:
            raise TaskDataError(f"{folder.root}: sid needs JOOCI-synth or VoxCeleb1 sid_* manifests; this is a "
                                f"{layout} folder ({', '.join(folder.names)})")
        train, dev, test = (folder.read(n) for n in names)
        seen = _speaker_of(train, task, src(names[0]))
        _speaker_of(dev, task, src(names[1]))
        _speaker_of(test, task, src(names[2]))
        # SID is closed-set: only speakers the classifier was trained on can be scored
        dev, test = [u for u in dev if u.speaker in seen], [u for u in test if u.speaker in seen]
        for n, part in ((names[1], dev), (names[2], test)):
            if not part:
                raise TaskDataError(f"{src(n)}: sid needs utterances of the training speakers, found none")
        return TaskSplits(train, dev, test, sources=dict(zip(("train", "dev", "test"), map(src, names))))
    if task == "asv":
        if layout == "synth":
            pool_names, test_name = ("train", "dev"), "test"
        elif layout == "voxceleb1":
            pool_names, test_name = (folder.first(("asv_train",), task, "training"),), folder.first(("asv_test",), task, "test")
        else:
            raise TaskDataError(f"{folder.root}: asv needs JOOCI-synth or VoxCeleb1 asv_* manifests and trials.txt; "
                                f"this is a {layout} folder ({', '.join(folder.names)})")
        trial_file = folder.root / "trials.txt"
        if not trial_file.is_file():
            raise TaskDataError(f"{trial_file}: asv needs a trial list ('<1|0> <id> <id>' per line), not found")
        try:
            trials = read_trials(trial_file)
        except ManifestError as e:
            raise TaskDataError(str(e)) from None
        pool = [u for n in pool_names for u in folder.read(n)]
        speakers = sorted(_speaker_of(pool, task, ", ".join(map(src, pool_names))))
        if len(speakers) < 4:
            raise TaskDataError(f"{', '.join(map(src, pool_names))}: asv needs at least 4 training speakers "
                                f"(some are kept for dev trials), found {len(speakers)}")
        test_all = folder.read(test_name)
        check_trials(trials, test_all, str(trial_file), src(test_name))
        named = {x for _, a, b in trials for x in (a, b)}
        test = [u for u in test_all if u.id in named]
        dev_spk = _rng_pick(speakers, asv_dev_fraction, 2, seed, "asv-dev")
        train = [u for u in pool if u.speaker not in dev_spk]
        dev = [u for u in pool if u.speaker in dev_spk]
        dev_ids: dict[str, Utterance] = {}
        for u in dev:  # the synth pool has one id per utterance; keep the first if a copy repeats
            dev_ids.setdefault(u.id, u)
        dev = list(dev_ids.values())
        return TaskSplits(train, dev, test, trials=trials, dev_trials=_dev_trials(dev, seed),
                          sources={"train": ", ".join(map(src, pool_names)), "test": src(test_name),
                                   "trials": str(trial_file)})
    if task == "er":
        if layout == "synth":
            train, dev, test_all = folder.read("train"), folder.read("dev"), folder.read("test")
            for n, part in (("train", train), ("dev", dev), ("test", test_all)):
                _require(part, "style", task, src(n))
            seen = _speaker_of(train, task, src("train"))
            test = [u for u in test_all if u.speaker not in seen]  # held-out speakers (ER generalises)
            if not test:
                log.warning("%s: no held-out speakers; er is tested on seen speakers", src("test"))
                test = test_all
            return TaskSplits(train, dev, test, sources={"train": src("train"), "dev": src("dev"), "test": src("test")})
        if layout == "iemocap":
            if not 1 <= er_fold <= 5:
                raise ValueError(f"er_fold must be 1..5, got {er_fold}")
            test_name = folder.first((f"Session{er_fold}",), task, f"test (fold {er_fold})")
            rest = [n for n in SESSIONS if n != test_name and folder.has(n)]
            if not rest:
                raise TaskDataError(f"{folder.root}: er fold {er_fold} needs other sessions to train on")
            pool = [u for n in rest for u in folder.read(n)]
            test = folder.read(test_name)
            _require(pool, "style", task, ", ".join(map(src, rest)))
            _require(test, "style", task, src(test_name))
            ids = sorted(u.id for u in pool)
            dev_ids = _rng_pick(ids, 0.2, 1, seed, "er-dev")
            return TaskSplits([u for u in pool if u.id not in dev_ids], [u for u in pool if u.id in dev_ids], test,
                              sources={"train": ", ".join(map(src, rest)), "test": src(test_name)})
        raise TaskDataError(f"{folder.root}: er needs style/emotion labels (JOOCI-synth or IEMOCAP manifests); this "
                            f"is a {layout} folder ({', '.join(folder.names)})")
    raise ValueError(f"unknown task {task!r}")

"""A rehearsal of the real formats: a JOOCI-synth corpus rewritten in the on-disk layouts of
LibriSpeech, VoxCeleb1 and IEMOCAP, so ``jooci prepare`` (:mod:`jooci.data.corpora`) and everything
after it run on exactly the trees the real corpora arrive as.

:func:`write_layout` takes a finished JOOCI-synth corpus folder (``synth.json`` + the split
manifests) and writes into ``out``:

``librispeech``
    ``out/LibriSpeech/<subset>/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` (FLAC, 16-bit) with one
    ``SPEAKER-CHAPTER.trans.txt`` per chapter in UPPER CASE. Synth split -> subset:
    ``pretrain`` -> train-clean-360, ``train`` -> train-clean-100, ``dev`` -> dev-clean, ``test`` ->
    test-clean, ``heldout_dev`` -> dev-other. Speakers get numeric ids (seeded, distinct, 2-4 digits);
    chapters hold up to ``CHAPTER_SIZE`` utterances of one speaker in one subset, ids unique across
    the corpus. Unlike real LibriSpeech, a seen speaker is in several subsets (JOOCI-synth's splits
    are utterance splits over the same speakers); the scanner does not care. Beside the tree,
    ``out/librispeech-lexicon.txt`` (as LibriSpeech's resources, openslr SLR11, ship one):
    ``WORD<TAB>PH1 PH2 ...`` for every word of the transcripts, ARPAbet-39 without stress, each word
    spoken alone by espeak-ng's ``en-us`` voice: a dictionary, so, as with a real lexicon, a word
    said in context or in another accent may differ from it. ``jooci evaluate --lexicon`` reads it
    to give PR its phones.
``voxceleb1``
    ``out/wav/idXXXXX/VIDEO/NNNNN.wav`` (ids from id10001, in a seeded order; videos are 11-character
    YouTube-like ids, up to ``VIDEO_SIZE`` utterances each, files numbered from 00001 per video),
    ``out/iden_split.txt`` (``1|2|3 id/VIDEO/NNNNN.wav``: synth pretrain + train -> 1, dev -> 2,
    test -> 3 for seen speakers; every held-out speaker's utterances by the synth split cycle, so
    SID, like VoxCeleb1's, covers every speaker) and ``out/veri_test2.txt`` (the synth ``trials.txt``
    as ``1 idA/V/00001.wav idB/W/00002.wav``: trials among the held-out test speakers only, as in
    VoxCeleb1-O, so they become ``asv_test`` and every other speaker ``asv_train``).
``iemocap``
    ``out/IEMOCAP_full_release/Session{1..5}/sentences/wav/<dialog>/<utt>.wav`` with
    ``dialog/EmoEvaluation/<dialog>.txt`` (the header line, then per turn the ``[start - end]<TAB>utt
    <TAB>label<TAB>[V, A, D]`` line, the ``C-E*``/``A-E*`` annotator lines and a blank line; plus a
    ``Categorical/`` subfolder as the real release has) and ``dialog/transcriptions/<dialog>.txt``
    (``utt [start-end]: Text.``, sentence case). Synth speakers go to the ten (session, gender) slots
    in a seeded order, sessions first (Session1 F, Session2 F, ..., Session5 F, Session1 M, ...: five
    speakers already give all five folds; several synth voices share a slot past ten), dialogs hold
    up to ``DIALOG_SIZE`` turns named ``Ses01F_impro01`` / ``Ses01M_script01_1`` ...; turn names
    ``<dialog>_<F|M>NNN``. Style -> label: neutral neu, happy hap (a seeded ``excited_fraction`` of
    them exc, which the scanner merges back into hap), sad sad, angry ang; a seeded
    ``no_majority_fraction`` of all turns is labelled ``xxx`` (no annotator majority) and so left out
    by the scanner, as a real copy's are.

Audio: wav targets are hard links to the synth files (a copy where linking fails), FLAC targets are
re-encoded losslessly from the 16-bit PCM, so samples are identical. Everything is deterministic
from ``seed`` (default: the synth corpus's own). ``out/layout.json`` (written last) marks a
finished tree and holds its settings: the same settings reuse it, others are an error unless
``overwrite``. ``out/layout_map.jsonl`` maps every synth id to its id, path and split(s) in the
layout (one JSON object a line), for tests and for checking numbers against the synth ground truth.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from jooci.data.corpora import read_trials
from jooci.data.manifest import Utterance, read_manifest, resolve
from jooci.fileio import atomic_write_text

LAYOUTS = ("librispeech", "voxceleb1", "iemocap")
FORMAT_VERSION = 2  # 2: the LibriSpeech layout has librispeech-lexicon.txt
LEXICON = "librispeech-lexicon.txt"
SYNTH_SPLITS = ("pretrain", "train", "dev", "test", "heldout_dev")
LIBRI_SUBSET = {"pretrain": "train-clean-360", "train": "train-clean-100", "dev": "dev-clean",
                "test": "test-clean", "heldout_dev": "dev-other"}
SID_SET = {"pretrain": "1", "train": "1", "dev": "2", "test": "3"}
# the synth split cycle (generate.SPLIT_CYCLE) as iden_split sets, for held-out speakers
_SID_CYCLE = ("1", "3", "2", "1", "1", "1", "1", "1", "1", "1")
EMOTION = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang"}
_VAD = {"neu": (2.5, 2.5, 2.5), "hap": (4.0, 3.5, 3.0), "exc": (4.0, 4.0, 3.5), "sad": (1.5, 2.0, 2.0),
        "ang": (1.5, 4.0, 4.0), "xxx": (2.5, 3.0, 3.0)}
_CATEGORY = {"neu": "Neutral state", "hap": "Happiness", "exc": "Excited", "sad": "Sadness",
             "ang": "Anger", "xxx": "Frustration"}
CHAPTER_SIZE = 20
VIDEO_SIZE = 6
DIALOG_SIZE = 24
_OWN = ("LibriSpeech", LEXICON, "wav", "iden_split.txt", "veri_test2.txt", "IEMOCAP_full_release",
        "layout.json", "layout_map.jsonl")
_YT = string.ascii_letters + string.digits + "-_"


class LayoutError(ValueError):
    """A source that is not a finished JOOCI-synth corpus, or an output folder that cannot be used."""


@dataclass
class _File:
    src: Path
    dst: Path


def write_layout(source: str | os.PathLike, out: str | os.PathLike, layout: str, *,
                 seed: int | None = None, excited_fraction: float = 0.3, no_majority_fraction: float = 0.1,
                 overwrite: bool = False, threads: int = 4) -> dict:
    """Write the finished JOOCI-synth corpus ``source`` into ``out`` in ``layout``'s real on-disk format
    (see the module docstring). Returns the summary (also in ``out/layout.json``).

    Raises:
        LayoutError: unknown layout, ``source`` not a finished corpus, ``out`` holding something else.
    """
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    for name, f in (("excited_fraction", excited_fraction), ("no_majority_fraction", no_majority_fraction)):
        if not 0.0 <= f < 1.0:
            raise LayoutError(f"{name} must lie in [0, 1), got {f}")
    source, out = Path(source).absolute(), Path(out).absolute()
    if out == source:
        raise LayoutError(f"{out}: the layout needs a folder of its own, not the synth corpus's")
    meta_path = source / "synth.json"
    if not meta_path.is_file():
        raise LayoutError(f"{source}: not a finished JOOCI-synth corpus (no synth.json; run `jooci synth` first)")
    synth_meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if seed is None:
        seed = int(synth_meta.get("config", {}).get("seed", 0))
    settings = {"format_version": FORMAT_VERSION, "layout": layout, "source": str(source), "seed": seed,
                "source_config": synth_meta.get("config"),
                **({"excited_fraction": excited_fraction, "no_majority_fraction": no_majority_fraction}
                   if layout == "iemocap" else {})}
    done = out / "layout.json"
    if done.is_file():
        old = json.loads(done.read_text(encoding="utf-8"))
        if old.get("settings") == settings:
            return old
        if not overwrite:
            diff = {k: (old.get("settings", {}).get(k), v) for k, v in settings.items()
                    if old.get("settings", {}).get(k) != v}
            raise LayoutError(f"{out} holds a layout made with other settings (existing vs requested: {diff}); "
                              "choose another folder or overwrite it")
    if out.is_dir():
        if not overwrite:
            check_out(out, source)
        for name in _OWN:  # an unfinished or replaced layout of ours: redone from scratch
            p = out / name
            if p.absolute() == source or _inside(source, p):
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    utts = _read_source(source)
    speakers = sorted({u.speaker for u in utts})
    rng = random.Random(f"layout/{layout}/{seed}")
    writer = {"librispeech": _librispeech, "voxceleb1": _voxceleb1, "iemocap": _iemocap}[layout]
    files, mapping, stats = writer(source, out, utts, speakers, rng,
                                   excited_fraction=excited_fraction, no_majority_fraction=no_majority_fraction)
    _write_audio(files, threads)
    atomic_write_text(out / "layout_map.jsonl", "".join(json.dumps(m) + "\n" for m in mapping))
    summary = {"settings": settings, "stats": {"utterances": len(mapping), "synth_speakers": len(speakers),
                                               "hours": round(sum(u.duration for u in utts) / 3600, 3), **stats}}
    atomic_write_text(done, json.dumps(summary, indent=1))
    return summary


def check_out(out: str | os.PathLike, source: str | os.PathLike) -> None:
    """Raise :class:`LayoutError` when ``out`` holds anything but a layout of ours and ``source``."""
    out, source = Path(out).absolute(), Path(source).absolute()
    if out.exists() and not out.is_dir():
        raise LayoutError(f"{out} is a file, not a folder")
    if not out.is_dir():
        return
    foreign = [p.name for p in out.iterdir() if p.name not in _OWN and not _inside(source, p)]
    if foreign:
        raise LayoutError(f"{out} holds files that are not a jooci layout ({', '.join(sorted(foreign)[:5])}); "
                          "choose an empty or new folder")


def _inside(source: Path, p: Path) -> bool:
    try:
        source.relative_to(p.absolute())
        return True
    except ValueError:
        return False


def _read_source(source: Path) -> list[Utterance]:
    utts: list[Utterance] = []
    for split in SYNTH_SPLITS:
        p = source / f"{split}.jsonl"
        if p.is_file():
            for u in read_manifest(p, check_durations=False):
                u.path = str(resolve(u, p.parent))
                u.split = split
                utts.append(u)
    if not utts:
        raise LayoutError(f"{source}: no split manifests ({', '.join(s + '.jsonl' for s in SYNTH_SPLITS)})")
    missing = [u.id for u in utts if u.speaker is None or not u.text or u.style is None]
    if missing:
        raise LayoutError(f"{source}: {len(missing)} utterance(s) without speaker, text or style "
                          f"(first: {', '.join(missing[:5])}); not a JOOCI-synth corpus")
    return sorted(utts, key=_order)


def _order(u: Utterance):
    tail = u.id.rsplit("-", 1)[-1]
    return (int(tail), u.id) if tail.isdigit() else (1 << 62, u.id)


def _by_speaker(utts: list[Utterance]) -> dict[str, list[Utterance]]:
    out: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        out[u.speaker].append(u)
    return out


# ---------------------------------------------------------------------------------------------
# LibriSpeech


def _librispeech(source, out, utts, speakers, rng, **_):
    numbers = rng.sample(range(19, 9999), len(speakers))
    spk_id = dict(zip(rng.sample(speakers, len(speakers)), map(str, numbers)))
    chapters = iter(rng.sample(range(100, 999999), len(utts) // CHAPTER_SIZE + 2 * len(speakers) * 5 + 10))
    files, mapping = [], []
    groups: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
    for u in utts:
        groups[(u.speaker, LIBRI_SUBSET[u.split])].append(u)
    per_subset: dict[str, int] = defaultdict(int)
    for (spk, subset), group in sorted(groups.items(), key=lambda kv: (kv[0][1], spk_id[kv[0][0]])):
        for start in range(0, len(group), CHAPTER_SIZE):
            chapter = str(next(chapters))
            folder = out / "LibriSpeech" / subset / spk_id[spk] / chapter
            folder.mkdir(parents=True, exist_ok=True)
            lines = []
            for k, u in enumerate(group[start:start + CHAPTER_SIZE]):
                uid = f"{spk_id[spk]}-{chapter}-{k:04d}"
                lines.append(f"{uid} {u.text.upper()}\n")
                dst = folder / f"{uid}.flac"
                files.append(_File(Path(u.path), dst))
                mapping.append({"synth_id": u.id, "id": uid, "path": str(dst.relative_to(out)),
                                "speaker": spk_id[spk], "split": subset, "synth_split": u.split})
                per_subset[subset] += 1
            (folder / f"{spk_id[spk]}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    lexicon = word_pronunciations(sorted({w for u in utts for w in (u.words or u.text.split())}))
    atomic_write_text(out / LEXICON, "".join(f"{w.upper()}\t{' '.join(p)}\n" for w, p in lexicon.items()))
    return files, mapping, {"speakers": len(spk_id), "subsets": dict(sorted(per_subset.items())),
                            "lexicon_words": len(lexicon)}


def word_pronunciations(words: list[str], voice: str = "en-us") -> dict[str, tuple[str, ...]]:
    """ARPAbet-39 phones of each word spoken alone by espeak-ng's ``voice`` (a dictionary entry),
    in a process of its own, so this one stays free of espeak-ng state (``espeak.isolated``)."""
    from jooci.data.synth.espeak import isolated

    return isolated(_pronounce, list(words), voice)


def _pronounce(words: list[str], voice: str) -> dict[str, tuple[str, ...]]:
    from jooci.data.synth.espeak import Espeak, ipa_to_arpabet

    engine = Espeak()
    engine.set_voice(voice)
    out = {}
    for w in words:
        _, events = engine.synth(w, seed=0)
        phones = tuple(p for e in events if e.name.replace("ˈ", "").replace("ˌ", "")
                       for p in ipa_to_arpabet(e.name))
        if not phones:
            raise LayoutError(f"espeak-ng gives no phones for the word {w!r}")  # pickles: a ValueError
        out[w] = phones
    return out


# ---------------------------------------------------------------------------------------------
# VoxCeleb1


def _voxceleb1(source, out, utts, speakers, rng, **_):
    trials_path = source / "trials.txt"
    if not trials_path.is_file():
        raise LayoutError(f"{trials_path}: the synth corpus has no trial list; cannot write veri_test2.txt")
    order = rng.sample(speakers, len(speakers))
    spk_id = {s: f"id{10001 + i}" for i, s in enumerate(order)}
    seen = {u.speaker for u in utts if u.split in ("pretrain", "train", "dev")}
    used_videos: set[str] = set()
    files, mapping, new_id, iden = [], [], {}, []
    for spk, group in sorted(_by_speaker(utts).items(), key=lambda kv: spk_id[kv[0]]):
        for start in range(0, len(group), VIDEO_SIZE):
            video = _youtube_id(rng, used_videos)
            for k, u in enumerate(group[start:start + VIDEO_SIZE], 1):
                uid = f"{spk_id[spk]}/{video}/{k:05d}"
                dst = out / "wav" / f"{uid}.wav"
                files.append(_File(Path(u.path), dst))
                new_id[u.id] = uid
                i = start + k - 1
                sid = SID_SET.get(u.split, "3") if spk in seen else _SID_CYCLE[i % len(_SID_CYCLE)]
                iden.append((sid, uid))
                mapping.append({"synth_id": u.id, "id": uid, "path": str(dst.relative_to(out)),
                                "speaker": spk_id[spk], "sid_split": {"1": "sid_train", "2": "sid_dev", "3": "sid_test"}[sid],
                                "synth_split": u.split})
    trials = read_trials(trials_path)
    unknown = [x for _, a, b in trials for x in (a, b) if x not in new_id]
    if unknown:
        raise LayoutError(f"{trials_path}: names {len(unknown)} utterance(s) not in the corpus's manifests "
                          f"(first: {', '.join(unknown[:5])})")
    test_spk = {new_id[x].split("/", 1)[0] for _, a, b in trials for x in (a, b)}
    for m in mapping:
        m["asv_split"] = "asv_test" if m["speaker"] in test_spk else "asv_train"
    atomic_write_text(out / "iden_split.txt", "".join(f"{s} {uid}.wav\n" for s, uid in iden))
    atomic_write_text(out / "veri_test2.txt",
                      "".join(f"{lab} {new_id[a]}.wav {new_id[b]}.wav\n" for lab, a, b in trials))
    return files, mapping, {"speakers": len(spk_id), "videos": len(used_videos), "trials": len(trials),
                            "trial_speakers": len(test_spk)}


def _youtube_id(rng: random.Random, used: set[str]) -> str:
    while True:
        v = "".join(rng.choice(_YT) for _ in range(11))
        if v[0] not in "-_" and v not in used:  # a leading '-' would read as an option in a shell
            used.add(v)
            return v


# ---------------------------------------------------------------------------------------------
# IEMOCAP


def _iemocap(source, out, utts, speakers, rng, *, excited_fraction, no_majority_fraction):
    order = rng.sample(speakers, len(speakers))
    # (session, gender): sessions first, so that five speakers already fill all five folds
    slot = {s: (i % 5 + 1, "FM"[i // 5 % 2]) for i, s in enumerate(order)}
    labels = {}
    for u in utts:
        label = EMOTION.get(u.style)
        if label is None:
            raise LayoutError(f"{u.id}: style {u.style!r} has no IEMOCAP label ({', '.join(EMOTION)})")
        if label == "hap" and rng.random() < excited_fraction:
            label = "exc"
        if rng.random() < no_majority_fraction:
            label = "xxx"
        labels[u.id] = label
    base = out / "IEMOCAP_full_release"
    files, mapping = [], []
    per_session: dict[int, list[Utterance]] = defaultdict(list)
    for u in utts:
        per_session[slot[u.speaker][0]].append(u)
    n_dialogs = 0
    for session, group in sorted(per_session.items()):
        sdir = base / f"Session{session}"
        emo_dir, tr_dir = sdir / "dialog" / "EmoEvaluation", sdir / "dialog" / "transcriptions"
        for d in (emo_dir / "Categorical", tr_dir):
            d.mkdir(parents=True, exist_ok=True)
        for k, start in enumerate(range(0, len(group), DIALOG_SIZE)):
            kind = f"impro{k // 4 + 1:02d}" if k % 4 < 2 else f"script{k // 4 + 1:02d}_{k % 2 + 1}"
            dialog = f"Ses{session:02d}{'FM'[k % 2]}_{kind}"
            n_dialogs += 1
            counts: dict[str, int] = defaultdict(int)
            t = round(rng.uniform(1.0, 5.0), 4)
            emo = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
            cat, trans = [], []
            for u in group[start:start + DIALOG_SIZE]:
                gender = slot[u.speaker][1]
                uid = f"{dialog}_{gender}{counts[gender]:03d}"
                counts[gender] += 1
                t0, t1 = t, round(t + u.duration, 4)
                t = round(t1 + rng.uniform(0.2, 2.0), 4)
                label = labels[u.id]
                v, a, dm = (x + rng.choice((-0.5, 0.0, 0.0, 0.5)) for x in _VAD[label])
                shown = "hap" if label == "exc" else label
                emo.append(f"[{t0:.4f} - {t1:.4f}]\t{uid}\t{label}\t[{v:.4f}, {a:.4f}, {dm:.4f}]\n")
                name = _CATEGORY[label]
                for ann in ("C-E1", "C-E2", "C-E4"):
                    emo.append(f"{ann}:\t{name};\t()\n")
                emo.append(f"A-E1:\tval {round(v)}; act {round(a)}; dom  {round(dm)};\t()\n")
                emo.append(f"A-E2:\tval {round(v)}; act {round(a)}; dom  {round(dm)};\t()\n\n")
                cat.append(f"{uid} :{name}; ()\n")
                text = u.text[:1].upper() + u.text[1:] + "."
                trans.append(f"{uid} [{t0:08.4f}-{t1:08.4f}]: {text}\n")
                dst = sdir / "sentences" / "wav" / dialog / f"{uid}.wav"
                dst.parent.mkdir(parents=True, exist_ok=True)
                files.append(_File(Path(u.path), dst))
                mapping.append({"synth_id": u.id, "id": uid, "path": str(dst.relative_to(out)),
                                "speaker": f"Ses{session:02d}{gender}", "split": f"Session{session}",
                                "label": label, "style": shown if label != "xxx" else None,
                                "text": text, "synth_split": u.split})
            (emo_dir / f"{dialog}.txt").write_text("".join(emo), encoding="utf-8")
            (emo_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text("".join(cat), encoding="utf-8")
            (tr_dir / f"{dialog}.txt").write_text("".join(trans), encoding="utf-8")
    counts_by_label: dict[str, int] = defaultdict(int)
    for m in mapping:
        counts_by_label[m["label"]] += 1
    return files, mapping, {"sessions": len(per_session), "speakers": len({m["speaker"] for m in mapping}),
                            "dialogs": n_dialogs, "labels": dict(sorted(counts_by_label.items()))}


# ---------------------------------------------------------------------------------------------
# Audio


def _write_audio(files: list[_File], threads: int) -> None:
    def one(f: _File) -> None:
        f.dst.parent.mkdir(parents=True, exist_ok=True)
        want = f.dst.suffix.lower()
        if f.src.suffix.lower() == want:
            try:
                os.link(f.src, f.dst)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(f.src, f.dst)
            return
        data, rate = sf.read(f.src, dtype="int16", always_2d=False)
        tmp = f.dst.with_name(f.dst.name + ".tmp")
        sf.write(tmp, data, rate, subtype="PCM_16", format="FLAC" if want == ".flac" else "WAV")
        os.replace(tmp, f.dst)

    with ThreadPoolExecutor(max(1, threads)) as ex:
        list(ex.map(one, files))


def summary_line(out: str | os.PathLike, summary: dict) -> str:
    """One line: what was written where, and the ``jooci prepare`` command that reads it."""
    s, layout = summary["stats"], summary["settings"]["layout"]
    out = Path(out)
    if layout == "librispeech":
        parts = ", ".join(f"{k} {v}" for k, v in s["subsets"].items())
        return (f"LibriSpeech layout in {out / 'LibriSpeech'}: {s['utterances']} utterances ({s['hours']} h), "
                f"{s['speakers']} speakers ({parts}); read it with `jooci prepare librispeech --root {out} --out DIR`")
    if layout == "voxceleb1":
        return (f"VoxCeleb1 layout in {out / 'wav'}: {s['utterances']} utterances ({s['hours']} h), "
                f"{s['speakers']} speakers, {s['videos']} videos, {s['trials']} trials over {s['trial_speakers']} "
                f"speakers; read it with `jooci prepare voxceleb1 --root {out} --iden-split {out / 'iden_split.txt'} "
                f"--trials {out / 'veri_test2.txt'} --out DIR`")
    labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
    return (f"IEMOCAP layout in {out / 'IEMOCAP_full_release'}: {s['utterances']} utterances ({s['hours']} h), "
            f"{s['sessions']} sessions, {s['speakers']} speakers, {s['dialogs']} dialogs ({labels}); read it with "
            f"`jooci prepare iemocap --root {out} --out DIR`")


__all__ = ["LAYOUTS", "LayoutError", "check_out", "write_layout", "summary_line"]

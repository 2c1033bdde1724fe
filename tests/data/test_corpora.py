"""jooci.data.corpora: scanners on tiny fake trees laid out and named like the real corpora."""

import argparse
import json
import logging

import numpy as np
import pytest
import soundfile as sf

from jooci.data.corpora import (
    CorpusError, prepare_corpus, read_trials, scan_iemocap,
    scan_librispeech, scan_voxceleb1, write_trials,
)
from jooci.data.manifest import ManifestError, read_manifest

SR = 16000


def _audio(path, n: int, seed: int = 0) -> None:
    """A short sine plus a little noise; the format (WAV/FLAC) follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * (120 + 15 * seed) * np.arange(n) / SR) + 0.01 * rng.standard_normal(n)
    sf.write(str(path), x.astype(np.float32), SR, subtype="PCM_16")


# ---------------------------------------------------------------------------------------------
# LibriSpeech: root/<subset>/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac + SPEAKER-CHAPTER.trans.txt

LIBRI = {
    "dev-clean": {
        "84-121123": ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED"],
        "174-168635": ["HE HAD NEVER BEEN FATHER LOVER HUSBAND FRIEND"],
    },
    "train-clean-100": {
        "19-198": ["NORTHANGER ABBEY", "I DON'T KNOW  WHAT YOU MEAN"],
    },
}


def _librispeech(base):
    """Write LIBRI under ``base`` (the LibriSpeech folder); returns {id: (num_samples, subset)}."""
    expect = {}
    for subset, chapters in LIBRI.items():
        for key, texts in chapters.items():
            spk, ch = key.split("-")
            d = base / subset / spk / ch
            lines = []
            for i, text in enumerate(texts):
                uid = f"{key}-{i:04d}"
                n = 1600 + 160 * len(expect)
                _audio(d / f"{uid}.flac", n, seed=len(expect))
                expect[uid] = (n, subset)
                lines.append(f"{uid} {text}\n")
            (d / f"{key}.trans.txt").write_text("".join(lines))
    return expect


@pytest.fixture
def libri(tmp_path):
    base = tmp_path / "LibriSpeech"
    return base, _librispeech(base)


def test_librispeech_records(libri):
    base, expect = libri
    utts = scan_librispeech(base)
    assert [u.id for u in utts] == ["174-168635-0000", "84-121123-0000", "84-121123-0001",
                                    "19-198-0000", "19-198-0001"], "sorted by (split, id)"
    by_id = {u.id: u for u in utts}
    for uid, (n, subset) in expect.items():
        u = by_id[uid]
        assert (u.num_samples, u.sample_rate, u.split) == (n, SR, subset)
        assert u.speaker == uid.split("-")[0]
        assert u.path.endswith(f"{uid}.flac") and (base / subset).as_posix() in u.path
    assert by_id["84-121123-0000"].text == "go do you hear", "text is lower-cased"
    assert by_id["19-198-0001"].text == "i don't know what you mean", "apostrophes kept, spaces normalised"
    assert by_id["19-198-0001"].words == ["i", "don't", "know", "what", "you", "mean"]
    assert all(u.style is None for u in utts)


def test_librispeech_root_forms_and_subset_choice(libri, tmp_path):
    base, _ = libri
    from_parent = scan_librispeech(tmp_path, subsets=["dev-clean"])
    assert {u.split for u in from_parent} == {"dev-clean"} and len(from_parent) == 3
    assert [u.id for u in scan_librispeech(base / "train-clean-100")] == ["19-198-0000", "19-198-0001"]
    assert len(scan_librispeech(base, subsets="train-clean-100")) == 2, "a single name is not iterated"


def test_librispeech_missing_root_no_subset_and_missing_subset(libri, tmp_path):
    base, _ = libri
    with pytest.raises(CorpusError, match="corpus folder not found") as e:
        scan_librispeech(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no LibriSpeech subset folder"):
        scan_librispeech(tmp_path / "empty")
    with pytest.raises(CorpusError) as e:
        scan_librispeech(base, subsets=["dev-clean", "test-other"])
    assert str(base / "test-other") in str(e.value)


def test_librispeech_skips_are_counted_logged_and_bounded(libri, caplog):
    base, _ = libri
    chapter = base / "dev-clean" / "84" / "121123"
    with open(chapter / "84-121123.trans.txt", "a") as f:
        f.write("84-121123-0007 A LINE WHOSE AUDIO IS GONE\n")
    _audio(chapter / "84-121123-0009.flac", 1600)  # audio without a transcript line
    (chapter / "84-121123-0005.flac").write_bytes(b"not a flac file")
    with open(chapter / "84-121123.trans.txt", "a") as f:
        f.write("84-121123-0005 A CORRUPT FILE\n")

    with pytest.raises(CorpusError) as e:  # 3 of 8 skipped: far past the default 1 %
        scan_librispeech(base)
    msg = str(e.value)
    assert "84-121123-0007" in msg and "84-121123-0009" in msg and "84-121123-0005" in msg
    assert "max_skip_fraction" in msg

    caplog.set_level(logging.WARNING, logger="jooci.data.corpora")
    utts = scan_librispeech(base, max_skip_fraction=0.5)
    assert len(utts) == 5
    assert not {"84-121123-0005", "84-121123-0007", "84-121123-0009"} & {u.id for u in utts}
    log = caplog.text
    assert "1 transcript lines without audio: 84-121123-0007" in log
    assert "1 audio files without a transcript line: dev-clean/84-121123-0009" in log
    assert "1 unreadable audio: 84-121123-0005" in log


# ---------------------------------------------------------------------------------------------
# VoxCeleb1: root/wav/idXXXXX/VIDEO/NNNNN.wav, iden_split.txt, veri_test2.txt

VOX = {  # id -> iden_split set
    "id10001/1zcIwhmdeo4/00001": 1, "id10001/1zcIwhmdeo4/00002": 1, "id10001/7gWzIy6yIIk/00001": 3,
    "id10002/0_laIeN-Q44/00001": 2, "id10002/0_laIeN-Q44/00003": 1,
    "id10270/x6uYqmx31kE/00001": 1, "id10270/8jEAjG6SegY/00008": 3, "id10271/1gtz-CUIygI/00001": 2,
}
VERI = ["1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav",
        "0 id10270/x6uYqmx31kE/00001.wav id10271/1gtz-CUIygI/00001.wav"]


@pytest.fixture
def vox(tmp_path):
    root = tmp_path / "voxceleb1"
    lengths = {}
    for i, uid in enumerate(VOX):
        lengths[uid] = 2000 + 100 * i
        _audio(root / "wav" / f"{uid}.wav", lengths[uid], seed=i)
    (root / "iden_split.txt").write_text("".join(f"{s} {uid}.wav\n" for uid, s in VOX.items()))
    (root / "veri_test2.txt").write_text("\n".join(VERI) + "\n")
    return root, lengths


def test_voxceleb1_without_protocol(vox):
    root, lengths = vox
    utts = scan_voxceleb1(root)
    assert [u.id for u in utts] == sorted(VOX)
    assert all(u.split is None and u.text is None for u in utts)
    assert {u.id: u.num_samples for u in utts} == lengths
    assert {u.id: u.speaker for u in utts}["id10270/8jEAjG6SegY/00008"] == "id10270"
    assert [u.id for u in scan_voxceleb1(root / "wav")] == sorted(VOX), "root may be the id* folder"


def test_voxceleb1_sid_split_and_split_parts(vox, tmp_path):
    root, _ = vox
    names = {1: "sid_train", 2: "sid_dev", 3: "sid_test"}
    utts = scan_voxceleb1(root, iden_split=root / "iden_split.txt")
    assert {u.id: u.split for u in utts} == {uid: names[s] for uid, s in VOX.items()}
    # s3prl's layout: the dev and test downloads side by side, each with its own wav/ folder.
    parts = tmp_path / "parts"
    for uid in VOX:
        part = "vox1_test_wav" if uid.startswith("id102") else "vox1_dev_wav"
        _audio(parts / part / "wav" / f"{uid}.wav", 1600)
    assert [u.id for u in scan_voxceleb1(parts)] == sorted(VOX)


def test_voxceleb1_asv_split_and_both_protocols(vox):
    root, _ = vox
    utts = scan_voxceleb1(root, trials=root / "veri_test2.txt")
    split = {u.id: u.split for u in utts}
    assert {uid for uid, s in split.items() if s == "asv_test"} == {
        "id10270/x6uYqmx31kE/00001", "id10270/8jEAjG6SegY/00008", "id10271/1gtz-CUIygI/00001"}
    assert split["id10001/7gWzIy6yIIk/00001"] == "asv_train"
    both = scan_voxceleb1(root, trials=root / "veri_test2.txt", iden_split=root / "iden_split.txt")
    assert len(both) == 2 * len(VOX), "one record per file and protocol"
    assert {u.split for u in both if u.id == "id10271/1gtz-CUIygI/00001"} == {"sid_dev", "asv_test"}


def test_voxceleb1_unknown_trial_utterance(vox, tmp_path, caplog):
    root, _ = vox
    bad = tmp_path / "trials.txt"
    bad.write_text("\n".join([*VERI, "1 id10270/x6uYqmx31kE/00001.wav id10270/GONE/00002.wav"]) + "\n")
    with pytest.raises(CorpusError) as e:
        scan_voxceleb1(root, trials=bad)
    assert "id10270/GONE/00002" in str(e.value) and str(bad) in str(e.value)
    caplog.set_level(logging.WARNING, logger="jooci.data.corpora")
    paths = prepare_corpus("voxceleb1", root, tmp_path / "out", trials=bad, allow_missing=True)
    assert read_trials(paths["trials"]) == [(1, "id10270/x6uYqmx31kE/00001", "id10270/8jEAjG6SegY/00008"),
                                            (0, "id10270/x6uYqmx31kE/00001", "id10271/1gtz-CUIygI/00001")]
    assert "id10270/GONE/00002" in caplog.text
    # an iden_split line naming an absent file fails the same way
    (root / "wav" / "id10002" / "0_laIeN-Q44" / "00003.wav").unlink()
    with pytest.raises(CorpusError, match="id10002/0_laIeN-Q44/00003"):
        scan_voxceleb1(root, iden_split=root / "iden_split.txt")


def test_trials_read_write(tmp_path):
    vox_format = tmp_path / "veri_test2.txt"
    vox_format.write_text("\n".join(VERI) + "\n\n")
    trials = read_trials(vox_format)
    assert trials[0] == (1, "id10270/x6uYqmx31kE/00001", "id10270/8jEAjG6SegY/00008")
    out = write_trials(trials, tmp_path / "sub" / "trials.txt")
    assert out.read_text().splitlines()[1] == "0 id10270/x6uYqmx31kE/00001 id10271/1gtz-CUIygI/00001"
    assert read_trials(out) == trials, "jooci's format (ids) reads back the same"
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a b\n2 a b\nx y\n")
    with pytest.raises(ManifestError, match="2 problem") as e:
        read_trials(bad)
    assert "line 2" in str(e.value) and "line 3" in str(e.value)
    with pytest.raises(ValueError):
        write_trials([(2, "a", "b")], tmp_path / "t.txt")


# ---------------------------------------------------------------------------------------------
# IEMOCAP: Session{N}/sentences/wav/<dialog>/<utt>.wav, dialog/EmoEvaluation, dialog/transcriptions

IEMO = {  # session -> dialog -> [(utt, label, transcript or None)]
    "Session1": {"Ses01F_impro01": [("Ses01F_impro01_F000", "neu", "Excuse me."),
                                    ("Ses01F_impro01_M000", "exc", "Do you have your forms?"),
                                    ("Ses01F_impro01_F001", "fru", "Yeah."),
                                    ("Ses01F_impro01_M001", "ang", "[LAUGHTER] Let me see them.")]},
    "Session5": {"Ses05M_script01_1": [("Ses05M_script01_1_F000", "sad", None),
                                       ("Ses05M_script01_1_M000", "hap", None),
                                       ("Ses05M_script01_1_M001", "xxx", None)]},
}


def _emo_line(k: int, utt: str, label: str) -> str:
    start = 6.2901 + 3 * k
    return (f"[{start:.4f} - {start + 2:.4f}]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]\n"
            f"C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n")


@pytest.fixture
def iemo(tmp_path):
    base = tmp_path / "IEMOCAP_full_release"
    lengths = {}
    for session, dialogs in IEMO.items():
        sess = base / session
        for dialog, utts in dialogs.items():
            emo = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            trans = ""
            for k, (utt, label, text) in enumerate(utts):
                lengths[utt] = 3000 + 100 * len(lengths)
                _audio(sess / "sentences" / "wav" / dialog / f"{utt}.wav", lengths[utt], seed=len(lengths))
                emo += _emo_line(k, utt, label)
                if text is not None:
                    trans += f"{utt} [{6.2901 + 3 * k:07.3f}-{8.2901 + 3 * k:07.3f}]: {text}\n"
            eval_dir = sess / "dialog" / "EmoEvaluation"
            (eval_dir / "Categorical").mkdir(parents=True)
            (eval_dir / f"{dialog}.txt").write_text(emo)
            # what the real tree also holds, and must be ignored: per-annotator files, macOS debris
            cat = eval_dir / "Categorical" / f"{dialog}_e2_cat.txt"
            cat.write_text(f"{utts[0][0]} :Neutral state; ()\n")
            (eval_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00")
            (sess / "sentences" / "wav" / dialog / f"._{utts[0][0]}.wav").write_bytes(b"\x00\x05\x16\x07")
            if trans:
                (sess / "dialog" / "transcriptions").mkdir(parents=True)
                (sess / "dialog" / "transcriptions" / f"{dialog}.txt").write_text(trans)
    return base, lengths


def test_iemocap_records(iemo, tmp_path, caplog):
    base, lengths = iemo
    caplog.set_level(logging.INFO, logger="jooci.data.corpora")
    utts = scan_iemocap(tmp_path)  # the parent of IEMOCAP_full_release works too
    by_id = {u.id: u for u in utts}
    assert [u.id for u in utts] == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_M001",
                                    "Ses05M_script01_1_F000", "Ses05M_script01_1_M000"]
    assert {u.id: u.style for u in utts} == {
        "Ses01F_impro01_F000": "neu", "Ses01F_impro01_M000": "hap", "Ses01F_impro01_M001": "ang",
        "Ses05M_script01_1_F000": "sad", "Ses05M_script01_1_M000": "hap"}, "exc merged into hap"
    assert {u.id: u.speaker for u in utts} == {
        "Ses01F_impro01_F000": "Ses01F", "Ses01F_impro01_M000": "Ses01M", "Ses01F_impro01_M001": "Ses01M",
        "Ses05M_script01_1_F000": "Ses05F", "Ses05M_script01_1_M000": "Ses05M"}
    assert {u.split for u in utts if u.id.startswith("Ses05")} == {"Session5"}
    assert by_id["Ses01F_impro01_F000"].split == "Session1"
    assert by_id["Ses01F_impro01_M000"].text == "Do you have your forms?"
    assert by_id["Ses01F_impro01_M001"].text == "[LAUGHTER] Let me see them."
    assert by_id["Ses05M_script01_1_F000"].text is None, "no transcriptions folder: no text"
    assert all(u.num_samples == lengths[u.id] and u.sample_rate == SR for u in utts)
    assert "excluded 2 utterance(s) of other classes" in caplog.text and "fru 1" in caplog.text


def test_iemocap_class_options(iemo):
    base, _ = iemo
    utts = scan_iemocap(base, classes=("neu", "hap", "exc", "fru"), merge_excited=False)
    assert {u.id: u.style for u in utts} == {
        "Ses01F_impro01_F000": "neu", "Ses01F_impro01_M000": "exc", "Ses01F_impro01_F001": "fru",
        "Ses05M_script01_1_M000": "hap"}
    with pytest.raises(ValueError, match="happy"):
        scan_iemocap(base, classes=("neu", "happy"))
    with pytest.raises(ValueError, match="merge_excited"):
        scan_iemocap(base, classes=("hap", "exc"))


def test_iemocap_errors_and_skips(iemo, tmp_path):
    base, _ = iemo
    with pytest.raises(CorpusError, match="corpus folder not found"):
        scan_iemocap(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(CorpusError, match="no IEMOCAP session folder"):
        scan_iemocap(tmp_path / "other")
    (base / "Session5" / "sentences" / "wav" / "Ses05M_script01_1" / "Ses05M_script01_1_F000.wav").unlink()
    with pytest.raises(CorpusError, match="Ses05M_script01_1_F000"):
        scan_iemocap(base)
    assert len(scan_iemocap(base, max_skip_fraction=0.25)) == 4
    emo = base / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    emo.write_text(emo.read_text() + "[1.0 - 2.0]\tSes01F_impro01_F009 neu [1, 2, 3]\n")
    with pytest.raises(CorpusError, match=r"Ses01F_impro01.txt:\d+"):
        scan_iemocap(base)


# ---------------------------------------------------------------------------------------------
# prepare_corpus and the CLI entry


def test_prepare_librispeech_manifests_read_back(libri, tmp_path):
    base, _ = libri
    paths = prepare_corpus("librispeech", base, tmp_path / "manifests")
    assert set(paths) == {"dev-clean", "train-clean-100"}
    assert paths["dev-clean"] == tmp_path / "manifests" / "dev-clean.jsonl"
    back = read_manifest(paths["dev-clean"]) + read_manifest(paths["train-clean-100"])
    assert back == scan_librispeech(base)


def test_prepare_voxceleb1_and_iemocap(vox, iemo, tmp_path):
    root, _ = vox
    out = tmp_path / "vox_out"
    paths = prepare_corpus("voxceleb1", root, out, trials=root / "veri_test2.txt",
                           iden_split=root / "iden_split.txt")
    assert set(paths) == {"sid_train", "sid_dev", "sid_test", "asv_train", "asv_test", "trials"}
    assert len(read_manifest(paths["sid_train"])) == 4 and len(read_manifest(paths["asv_test"])) == 3
    assert paths["trials"].read_text().splitlines()[0] == \
        "1 id10270/x6uYqmx31kE/00001 id10270/8jEAjG6SegY/00008"
    assert {p.name for p in out.iterdir()} == {f"{s}.jsonl" for s in paths if s != "trials"} | {"trials.txt"}

    assert set(prepare_corpus("voxceleb1", root, tmp_path / "plain")) == {"all"}

    base, _ = iemo
    # manifests written into the corpus folder store relative paths: the folder can move whole
    paths = prepare_corpus("iemocap", base, base)
    rec = json.loads(paths["Session1"].read_text().splitlines()[0])
    assert rec["path"] == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert rec["style"] == "neu" and rec["speaker"] == "Ses01F" and rec["split"] == "Session1"
    assert [u.style for u in read_manifest(paths["Session5"])] == ["sad", "hap"]

    with pytest.raises(ValueError, match="trials"):
        prepare_corpus("librispeech", base, tmp_path / "x", trials=root / "veri_test2.txt")
    with pytest.raises(ValueError, match="unknown corpus kind"):
        prepare_corpus("timit", base, tmp_path / "x")


def test_run_prepare(vox, tmp_path, capsys):
    root, _ = vox
    from jooci.cli.prepare import add_arguments, run as run_prepare

    parser = argparse.ArgumentParser(prog="jooci prepare")
    add_arguments(parser)
    args = parser.parse_args(["voxceleb1", "--root", str(root), "--out", str(tmp_path / "o"),
                              "--trials", str(root / "veri_test2.txt")])
    assert run_prepare(args) == 0
    printed = capsys.readouterr().out
    assert "asv_test" in printed and "(3 utterances)" in printed and "(2 trials)" in printed
    assert read_trials(tmp_path / "o" / "trials.txt")[1][0] == 0

    args = parser.parse_args(["iemocap", "--root", str(tmp_path / "missing"),
                              "--out", str(tmp_path / "o2")])
    assert run_prepare(args) == 2
    err = capsys.readouterr().err
    assert "jooci prepare: error:" in err and str(tmp_path / "missing") in err
    assert not (tmp_path / "o2").exists()

"""jooci.data.synth.layouts: a JOOCI-synth corpus rewritten as LibriSpeech, VoxCeleb1 and IEMOCAP
trees, read back by the real scanners (jooci.data.corpora) and checked against the synth truth."""

import json

import jiwer
import numpy as np
import pytest
import soundfile as sf

from jooci.cli import main
from jooci.cli.synth import LAYOUTS as CLI_LAYOUTS
from jooci.data.corpora import read_trials, scan_iemocap, scan_librispeech, scan_voxceleb1
from jooci.data.manifest import read_manifest
from jooci.data.synth import SynthConfig, synthesize
from jooci.data.synth.layouts import LAYOUTS, LayoutError, write_layout


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth") / "corpus",
                      SynthConfig(minutes=2, speakers=12, seed=3), workers=1, progress=False)


def _synth(source):
    """{synth id: Utterance} over every split manifest."""
    out = {}
    for split in ("pretrain", "train", "dev", "test", "heldout_dev"):
        p = source / f"{split}.jsonl"
        if p.is_file():
            for u in read_manifest(p, check_durations=False):
                u.split = split
                out[u.id] = u
    return out


def _map(out):
    return [json.loads(line) for line in (out / "layout_map.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def layouts(source, tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {name: (base / name, write_layout(source, base / name, name)) for name in LAYOUTS}


def test_the_cli_offers_every_layout():
    assert set(CLI_LAYOUTS) == {"jooci", *LAYOUTS}


def test_librispeech_reads_back_with_ids_speakers_texts_and_samples(source, layouts):
    out, summary = layouts["librispeech"]
    truth, mapping = _synth(source), _map(out)
    assert len(mapping) == len(truth) == summary["stats"]["utterances"]
    scanned = {u.id: u for u in scan_librispeech(out)}
    assert set(scanned) == {m["id"] for m in mapping}
    speaker_of = {}
    for m in mapping:
        u, s = scanned[m["id"]], truth[m["synth_id"]]
        assert (u.split, u.speaker) == (m["split"], m["speaker"])
        assert u.text == s.text.lower() and u.words == s.text.lower().split()
        assert u.num_samples == s.num_samples
        speaker_of.setdefault(s.speaker, u.speaker)
        assert speaker_of[s.speaker] == u.speaker  # one synth voice, one LibriSpeech speaker id
        assert u.path.endswith(".flac") and sf.info(u.path).format == "FLAC"
    assert len(set(speaker_of.values())) == len(speaker_of)
    # lossless: the FLAC holds the synth wav's samples exactly
    m = mapping[0]
    a, _ = sf.read(scanned[m["id"]].path, dtype="int16")
    b, _ = sf.read(source / truth[m["synth_id"]].path, dtype="int16")
    np.testing.assert_array_equal(a, b)
    subsets = {m["synth_split"]: m["split"] for m in mapping}
    assert subsets["pretrain"] == "train-clean-360" and subsets["test"] == "test-clean"


def test_librispeech_lexicon_covers_the_transcripts_and_matches_us_voices(source, layouts):
    from jooci.data.synth import ARPABET_39
    from jooci.superb.data import add_lexicon_phones, read_lexicon

    out, summary = layouts["librispeech"]
    lexicon = read_lexicon(out / "librispeech-lexicon.txt")  # as evaluate --lexicon reads it
    scanned = scan_librispeech(out)
    words = {w for u in scanned for w in u.words}
    assert set(lexicon) == words and summary["stats"]["lexicon_words"] == len(words)
    assert {p for phones in lexicon.values() for p in phones} <= set(ARPABET_39)
    assert len(add_lexicon_phones(scanned, lexicon, "libri")) == len(scanned)  # nothing out of the lexicon
    # a dictionary of the en-us voice: an en-us speaker's phones differ from it only where a word
    # said in context is reduced ("a": EY alone, AH in a sentence)
    accent = {s["id"]: s["accent"] for s in json.loads((source / "speakers.json").read_text())}
    us = [u for u in _synth(source).values() if accent[u.speaker] == "en-us"]
    refs = [" ".join(u.phones) for u in us]
    hyps = [" ".join(p for w in u.words for p in lexicon[w]) for u in us]
    assert us and jiwer.wer(refs, hyps) < 0.05


def test_voxceleb1_protocols_read_back(source, layouts):
    out, _ = layouts["voxceleb1"]
    truth, mapping = _synth(source), _map(out)
    utts = scan_voxceleb1(out, iden_split=out / "iden_split.txt", trials=out / "veri_test2.txt")
    got = {(u.id, u.split) for u in utts}
    assert got == ({(m["id"], m["sid_split"]) for m in mapping} | {(m["id"], m["asv_split"]) for m in mapping})
    # every speaker is in SID training, as in VoxCeleb1's iden_split
    sid_train = {u.speaker for u in utts if u.split == "sid_train"}
    assert sid_train == {m["speaker"] for m in mapping}
    # the trials are the synth trials, renamed; their speakers are exactly asv_test's
    new = {m["synth_id"]: m["id"] for m in mapping}
    synth_trials = read_trials(source / "trials.txt")
    assert read_trials(out / "veri_test2.txt") == [(lab, new[a], new[b]) for lab, a, b in synth_trials]
    trial_speakers = {new[x].split("/")[0] for _, a, b in synth_trials for x in (a, b)}
    assert {u.speaker for u in utts if u.split == "asv_test"} == trial_speakers
    assert trial_speakers == {m["speaker"] for m in mapping if truth[m["synth_id"]].speaker in
                              {truth[x].speaker for _, a, b in synth_trials for x in (a, b)}}
    assert all(u.text is None for u in utts)


def test_iemocap_labels_sessions_and_exclusions_read_back(source, layouts):
    out, summary = layouts["iemocap"]
    truth, mapping = _synth(source), _map(out)
    scanned = {u.id: u for u in scan_iemocap(out)}
    kept = [m for m in mapping if m["label"] != "xxx"]
    assert 0 < len(kept) < len(mapping)  # the no-majority turns are left out, as a real copy's
    assert set(scanned) == {m["id"] for m in kept}
    to_style = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang"}
    for m in kept:
        u, s = scanned[m["id"]], truth[m["synth_id"]]
        assert u.style == to_style[s.style]  # exc is merged back into hap
        assert (u.split, u.speaker) == (m["split"], m["speaker"])
        assert u.num_samples == s.num_samples
    assert summary["stats"]["sessions"] == 5 and {u.split for u in scanned.values()} == {
        f"Session{i}" for i in range(1, 6)}
    assert summary["stats"]["labels"].get("exc", 0) > 0


def test_same_settings_reuse_others_refused(source, layouts, tmp_path):
    out, summary = layouts["voxceleb1"]
    assert write_layout(source, out, "voxceleb1") == summary
    with pytest.raises(LayoutError, match="other settings"):
        write_layout(source, out, "voxceleb1", seed=99)
    again = write_layout(source, tmp_path / "v", "voxceleb1")
    assert (tmp_path / "v" / "iden_split.txt").read_text() == (out / "iden_split.txt").read_text()
    assert again["stats"] == summary["stats"]


def test_bad_sources_and_targets(source, tmp_path):
    with pytest.raises(LayoutError, match="no synth.json"):
        write_layout(tmp_path, tmp_path / "o", "librispeech")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(LayoutError, match="not a jooci layout"):
        write_layout(source, tmp_path / "foreign", "iemocap")
    with pytest.raises(LayoutError, match="unknown layout"):
        write_layout(source, tmp_path / "o", "timit")


def test_cli_writes_a_layout_that_prepare_reads(tmp_path, capsys):
    out = tmp_path / "libri"
    assert main(["synth", "--out", str(out), "--minutes", "0.5", "--speakers", "8", "--workers", "1",
                 "--layout", "librispeech"]) == 0
    assert "jooci prepare librispeech" in capsys.readouterr().out
    assert main(["prepare", "librispeech", "--root", str(out), "--out", str(tmp_path / "m")]) == 0
    n = sum(len(read_manifest(p, check_durations=False)) for p in (tmp_path / "m").glob("*.jsonl"))
    assert n == len(_map(out))
    # --source with the jooci layout is a one-line error, not a traceback
    assert main(["synth", "--out", str(tmp_path / "j"), "--source", str(out), "--minutes", "0.5"]) != 0
    assert "--source applies to" in capsys.readouterr().err

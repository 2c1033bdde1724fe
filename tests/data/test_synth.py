"""JOOCI-synth: content, labels, splits, reproducibility and reuse of the generated corpus."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from jooci.cli import main
from jooci.data.manifest import read_manifest
from jooci.data.synth import ARPABET_39, STYLES, SynthConfig, SynthError, ipa_to_arpabet, synthesize
from jooci.data.synth import grammar
from jooci.data.synth.espeak import Espeak, isolated
from jooci.data.synth.generate import ACCENTS, SPLITS, PhonemeEvent, phone_alignment

TEN_MINUTES = SynthConfig(minutes=10, seed=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "c"
    synthesize(out, TEN_MINUTES, workers=2, progress=False)
    return out


def _all(out):
    return [u for s in SPLITS for u in read_manifest(out / f"{s}.jsonl")]


def test_ten_minutes_with_speakers_styles_and_phones(corpus):
    utts = _all(corpus)
    assert 9.8 * 60 <= sum(u.duration for u in utts) <= 12 * 60
    assert len({u.speaker for u in utts}) >= 40
    assert Counter(u.style for u in utts).keys() == {s.name for s in STYLES}
    phones = {p for u in utts for p in u.phones}
    assert phones <= set(ARPABET_39) and len(phones) >= 38
    meta = json.loads((corpus / "synth.json").read_text())
    assert meta["stats"]["utterances"] == len(utts)


def test_alignments_tile_the_audio(corpus):
    for u in _all(corpus):
        segs = u.alignment
        assert segs[0][1] == 0 and segs[-1][2] == u.num_samples, u.id
        assert all(a[2] == b[1] for a, b in zip(segs, segs[1:])), f"{u.id}: gaps or overlaps"
        assert all(s < e for _, s, e in segs), f"{u.id}: empty segment"
        assert [p for p, _, _ in segs if p != "sil"] == u.phones
        assert u.text == " ".join(u.words) and u.phones


def test_audio_matches_manifest_and_has_no_digital_silence(corpus):
    for u in _all(corpus)[:40]:
        x, sr = sf.read(u.path, dtype="int16")
        assert sr == 16000 and len(x) == u.num_samples
        zero = x == 0
        assert zero.mean() < 0.1, f"{u.id}: {zero.mean():.0%} exact zeros"
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, zero.astype(np.int8), 0])))[::2]
        assert runs.max(initial=0) < 16, f"{u.id}: a run of {runs.max()} exact zeros"


def test_splits_and_heldout_speakers(corpus):
    speakers = json.loads((corpus / "speakers.json").read_text())
    heldout = {s["id"] for s in speakers if s["heldout"]}
    seen = {s["id"] for s in speakers if not s["heldout"] and not s["heldout_dev"]}
    assert len(heldout) == round(0.2 * len(speakers))
    by_split = {s: read_manifest(corpus / f"{s}.jsonl") for s in SPLITS}
    for s in ("pretrain", "train", "dev"):
        assert not {u.speaker for u in by_split[s]} & heldout, f"held-out speaker in {s}"
        assert all(u.split == s for u in by_split[s])
    assert {u.speaker for u in by_split["train"]} == seen, "every seen speaker has training data (SID)"
    assert {u.speaker for u in by_split["test"]} >= heldout
    assert len({(sp["accent"], sp["variant"]) for sp in speakers}) == len(speakers)
    assert {sp["accent"] for sp in speakers} == set(ACCENTS)


def test_heldout_dev_speakers_are_in_no_other_split(corpus):
    speakers = json.loads((corpus / "speakers.json").read_text())
    dev = {s["id"] for s in speakers if s["heldout_dev"]}
    test = {s["id"] for s in speakers if s["heldout"]}
    assert len(dev) == round(0.1 * len(speakers)) and not dev & test
    by_split = {s: read_manifest(corpus / f"{s}.jsonl") for s in SPLITS}
    assert {u.speaker for u in by_split["heldout_dev"]} == dev
    for s in ("pretrain", "train", "dev", "test"):
        assert not {u.speaker for u in by_split[s]} & dev, f"dev speaker in {s}"
    pool = {u.id: u.speaker for u in by_split["heldout_dev"]}
    labels = Counter()
    for line in (corpus / "trials_dev.txt").read_text().splitlines():
        label, a, b = line.split()
        assert (label == "1") == (pool[a] == pool[b])
        labels[label] += 1
    assert labels["1"] == labels["0"] > 20


def test_no_dev_speakers_gives_the_format_1_plan():
    from jooci.data.synth.generate import plan_speakers

    old = plan_speakers(SynthConfig(seed=4, dev_heldout_fraction=0.0))
    new = plan_speakers(SynthConfig(seed=4))
    assert not any(s.heldout_dev for s in old)
    # the dev group is drawn from its own stream: every speaker is what it was, only the flag differs
    strip = lambda spk: [(s.id, s.accent, s.variant, s.pitch, s.rate, s.heldout) for s in spk]  # noqa: E731
    assert strip(old) == strip(new)
    with pytest.raises(ValueError, match="leave 0 seen speaker"):
        SynthConfig(speakers=4, dev_heldout_fraction=0.5).validate()


def test_trials_among_heldout_speakers(corpus):
    speakers = json.loads((corpus / "speakers.json").read_text())
    heldout = {s["id"] for s in speakers if s["heldout"]}
    test = {u.id: u.speaker for u in read_manifest(corpus / "test.jsonl")}
    lines = (corpus / "trials.txt").read_text().splitlines()
    labels = Counter()
    for line in lines:
        label, a, b = line.split()
        assert test[a] in heldout and test[b] in heldout and a != b
        assert (label == "1") == (test[a] == test[b])
        labels[label] += 1
    assert labels["1"] == labels["0"] > 50


def test_same_seed_same_manifests_whatever_the_workers(corpus, tmp_path):
    other = synthesize(tmp_path / "again", TEN_MINUTES, workers=1, progress=False)
    for s in SPLITS:
        a = [json.loads(x) for x in (corpus / f"{s}.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (other / f"{s}.jsonl").read_text().splitlines()]
        assert a == b, f"{s}.jsonl differs"
    assert (corpus / "trials.txt").read_text() == (other / "trials.txt").read_text()
    different = synthesize(tmp_path / "seed2", SynthConfig(minutes=1, seed=2), progress=False)
    assert read_manifest(different / "train.jsonl")[0].text != read_manifest(corpus / "train.jsonl")[0].text


def test_finished_corpus_is_reused_and_other_settings_refused(corpus):
    stamp = os.path.getmtime(corpus / "synth.json")
    assert synthesize(corpus, TEN_MINUTES, progress=False) == corpus
    assert os.path.getmtime(corpus / "synth.json") == stamp
    with pytest.raises(SynthError, match="other settings.*minutes"):
        synthesize(corpus, SynthConfig(minutes=5, seed=1), progress=False)


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match="not a JOOCI-synth corpus"):
        synthesize(tmp_path, SynthConfig(minutes=0.2, speakers=6), progress=False)


def test_flac_and_small_speaker_counts(tmp_path):
    out = synthesize(tmp_path / "f", SynthConfig(minutes=0.5, seed=3, speakers=6, audio_format="flac"), progress=False)
    utts = _all(out)
    assert all(u.path.endswith(".flac") for u in utts)
    x, sr = sf.read(utts[0].path)
    assert sr == 16000 and len(x) == utts[0].num_samples


@pytest.mark.parametrize("bad", [dict(minutes=0), dict(speakers=3), dict(audio_format="mp3"), dict(heldout_fraction=1.0)])
def test_bad_config(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad).validate()


def _phonemes_per_accent() -> dict[str, list[str]]:
    engine = Espeak()
    text = " ".join(grammar.vocabulary()) + "."
    out = {}
    for accent in ACCENTS:
        engine.set_voice(accent)
        engine.set_params(rate=300, pitch=50, pitch_range=50, volume=100)
        out[accent] = [ev.name for ev in engine.synth(text, seed=1)[1] if ev.name]
    return out


def test_every_word_in_every_accent_maps_to_arpabet():
    for accent, names in isolated(_phonemes_per_accent).items():  # espeak in a process of its own
        for name in names:
            assert all(p in ARPABET_39 for p in ipa_to_arpabet(name)), (accent, name)
    with pytest.raises(KeyError, match="no ARPAbet mapping"):
        ipa_to_arpabet("ʘ")


def test_synthesis_does_not_depend_on_what_this_process_did_with_espeak(tmp_path):
    """A forked worker inherits its parent's espeak-ng state: once this process has used espeak,
    synthesis spawns its workers instead, and the corpus stays the same."""
    import jooci.data.synth.espeak as E
    from jooci.data.synth.layouts import word_pronunciations

    cfg = SynthConfig(minutes=0.2, speakers=8, seed=5)

    def wavs(root):
        return [(p.name, p.read_bytes()) for p in sorted((root / "wav").rglob("*.wav"))]

    first = wavs(synthesize(tmp_path / "a", cfg, workers=1, progress=False))
    assert word_pronunciations(["hello"]) and not E.loaded_here()  # isolated: nothing left here
    assert wavs(synthesize(tmp_path / "b", cfg, workers=1, progress=False)) == first
    # a process that has used espeak itself (in a child, to keep this one clean)
    sessions = SynthConfig(minutes=0.2, speakers=8, seed=5, sessions=2, rooms=2)
    with_sessions = wavs(synthesize(tmp_path / "s", sessions, workers=1, progress=False))
    code = ("import sys; from jooci.data.synth import SynthConfig, synthesize; "
            "import jooci.data.synth.espeak as E; E.Espeak().synth('something else entirely.', seed=9); "
            "assert E.loaded_here() and E.start_method() == 'spawn'; "
            "synthesize(sys.argv[1], SynthConfig(minutes=0.2, speakers=8, seed=5), workers=1, progress=False); "
            "synthesize(sys.argv[2], SynthConfig(minutes=0.2, speakers=8, seed=5, sessions=2, rooms=2), workers=1, "
            "progress=False)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c"), str(tmp_path / "cs")], check=True)
    assert wavs(tmp_path / "c") == first and wavs(tmp_path / "cs") == with_sessions  # spawned workers too


def test_phone_alignment_by_hand():
    # 22050 Hz events: lead-in silence, 'əl' (two phones), a pause, then 'k' to the end.
    events = [PhonemeEvent("ˈəl", 441), PhonemeEvent("", 1323), PhonemeEvent("k", 1764)]
    segs = phone_alignment(events, num_samples_in=2205, num_samples_out=1600)
    assert segs == [("sil", 0, 320), ("AH", 320, 640), ("L", 640, 960), ("sil", 960, 1280), ("K", 1280, 1600)]


def test_grammar_has_a_few_hundred_words():
    assert 300 <= len(grammar.vocabulary()) <= 600


def test_cli(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "c"), "--minutes", "0.3", "--speakers", "6", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "JOOCI-synth corpus in" in out and "| train |" in out
    assert main(["synth", "--out", str(tmp_path / "c"), "--minutes", "0.4", "--speakers", "6"]) == 2
    assert "other settings" in capsys.readouterr().err

"""JOOCI-synth format 3: voices from continuous traits, recorded in sessions (rooms, microphones,
bands, noise), with SID's test utterances from sessions a speaker never trained on."""

import json
import os
from collections import Counter, defaultdict

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("pyroomacoustics")

from jooci.cli import main  # noqa: E402
from jooci.data.manifest import read_manifest  # noqa: E402
from jooci.data.synth import SynthConfig, synthesize  # noqa: E402
from jooci.data.synth.generate import SPLITS, _config_json, n_test_sessions, plan_speakers  # noqa: E402
from jooci.data.synth.espeak import isolated  # noqa: E402
from jooci.data.synth.voices import VoiceTraits, voice_data  # noqa: E402

CFG = SynthConfig(minutes=5, speakers=12, sessions=2, seed=1, rooms=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("sessions") / "c", CFG, workers=2, progress=False)


def _utts(root):
    out = []
    for split in SPLITS:
        if (root / f"{split}.jsonl").is_file():
            for u in read_manifest(root / f"{split}.jsonl", check_durations=False):
                out.append((split, u))
    return out


def test_every_utterance_names_its_session_and_splits_follow_the_sessions(corpus):
    meta = json.loads((corpus / "synth.json").read_text())
    assert meta["format_version"] == 3 and meta["config"]["sessions"] == CFG.sessions
    sessions = {s["id"]: s for s in json.loads((corpus / "sessions.json").read_text())["sessions"]}
    speakers = {s["id"]: s for s in json.loads((corpus / "speakers.json").read_text())}
    assert len(sessions) == CFG.sessions * len(speakers) and meta["stats"]["sessions"] <= len(sessions)
    seen_test, seen_train = defaultdict(set), defaultdict(set)
    for split, u in _utts(corpus):
        sid = u.custom["session"]
        s, spk = sessions[sid], speakers[u.speaker]
        assert s["speaker"] == u.speaker
        if spk["heldout"]:
            assert split == "test" and not s["test"]
        elif spk["heldout_dev"]:
            assert split == "heldout_dev"
        else:
            assert (split == "test") == s["test"]  # seen speakers: test utterances = test sessions
            (seen_test if split == "test" else seen_train)[u.speaker].add(sid)
    assert seen_test and all(not (seen_test[k] & seen_train[k]) for k in seen_test)
    n_test = {k: sum(s["test"] for s in sessions.values() if s["speaker"] == k) for k in seen_test}
    assert set(n_test.values()) == {n_test_sessions(CFG.sessions)}


def test_voices_are_the_speakers_own_and_sessions_differ(corpus):
    speakers = json.loads((corpus / "speakers.json").read_text())
    assert len({s["variant"] for s in speakers}) == len(speakers)
    traits = [VoiceTraits(**{**s["traits"], "formants": tuple(s["traits"]["formants"])}) for s in speakers]
    assert len({t.pitch_hz for t in traits}) == len(traits) and {t.gender for t in traits} == {"male", "female"}
    chans = [s["channel"] for s in json.loads((corpus / "sessions.json").read_text())["sessions"]]
    assert len({json.dumps(c, sort_keys=True) for c in chans}) == len(chans)
    levels = [10 * np.log10(np.mean(sf.read(corpus / u.path)[0] ** 2)) for _, u in _utts(corpus)]
    assert np.std(levels) > 2.0  # sessions record at different levels
    assert max(abs(sf.read(corpus / u.path)[0]).max() for _, u in _utts(corpus)) <= 0.95 + 1e-3


def test_same_seed_same_corpus_whatever_the_workers(corpus, tmp_path):
    again = synthesize(tmp_path / "again", CFG, workers=1, progress=False)
    assert [(s, u.id, u.custom, u.num_samples) for s, u in _utts(again)] == \
        [(s, u.id, u.custom, u.num_samples) for s, u in _utts(corpus)]
    for (_, a), (_, b) in list(zip(_utts(again), _utts(corpus)))[:12]:
        assert np.array_equal(sf.read(again / a.path)[0], sf.read(corpus / b.path)[0])
    assert (again / "sessions.json").read_text() == (corpus / "sessions.json").read_text()


def test_format_2_is_untouched_by_the_session_settings():
    assert "sessions" not in _config_json(SynthConfig()) and "rooms" not in _config_json(SynthConfig())
    assert all(s.traits is None and "traits" not in s.to_json() for s in plan_speakers(SynthConfig(seed=4)))
    with pytest.raises(ValueError, match="at most 328 speakers without sessions"):
        SynthConfig(speakers=400).validate()
    many = plan_speakers(SynthConfig(speakers=400, sessions=4))  # a voice each: no limit
    assert len({s.variant for s in many}) == 400
    with pytest.raises(ValueError, match="at least 2"):
        SynthConfig(sessions=1).validate()


def _spoken(job):
    """In a fresh process (espeak is process-global): one sentence in each of two variants."""
    from jooci.data.synth.espeak import Espeak

    data, names = job
    engine, out = Espeak(data), []
    for name in names:
        engine.set_voice(f"en-us+{name}")
        engine.set_params(rate=160, pitch=50, pitch_range=0, volume=100)
        out.append(engine.synth("a man saw the ocean and the moon.", seed=1)[0].astype(np.float64))
    return out


def _centroid(x):
    f = np.fft.rfftfreq(x.size, 1 / 22050)
    p = np.abs(np.fft.rfft(x)) ** 2
    return float((f * p).sum() / p.sum())


def _f0(x, sr=22050):
    """Median autocorrelation F0 (60-400 Hz) over voiced 40 ms frames."""
    n, hop, est = int(0.04 * sr), int(0.01 * sr), []
    for s in range(0, x.size - n, hop):
        w = x[s:s + n] - x[s:s + n].mean()
        if np.mean(w ** 2) < 0.05 * np.mean(x ** 2):
            continue
        ac = np.correlate(w, w, "full")[n - 1:]
        lo, hi = int(sr / 400), int(sr / 60)
        est.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(est))


def test_traits_change_the_voice_as_written(tmp_path):
    flat = (100.0,) * 9
    variants = {"jlow": VoiceTraits("male", 100.0, 100.0, flat, 0, 0),
                "jhigh": VoiceTraits("male", 200.0, 200.0, flat, 0, 0),
                "jshort": VoiceTraits("male", 100.0, 100.0, (118.0,) * 9, 0, 0)}
    data = str(voice_data(tmp_path / "voices", variants))
    with pytest.raises(ValueError, match="not a plain file name"):
        voice_data(tmp_path / "other", {"../m3": variants["jlow"]})
    low, high, short = isolated(_spoken, (data, list(variants)))
    assert _f0(high) / _f0(low) == pytest.approx(2.0, rel=0.15)  # pitch in Hz as written
    assert _centroid(short) > 1.08 * _centroid(low)  # a shorter vocal tract: higher formants


def test_cli_makes_a_corpus_with_sessions(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--minutes", "1", "--speakers", "8", "--sessions", "2",
                 "--workers", "1", "--no-progress"]) == 0
    assert "recording sessions" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path / "bad"), "--sessions", "1", "--no-progress"]) == 2
    assert "sessions must be 0 (none) or at least 2" in capsys.readouterr().err


def test_target_trials_are_cross_session_first(corpus):
    from jooci.data.corpora import read_trials
    from jooci.data.synth.generate import make_trials

    utts = {u.id: u for _, u in _utts(corpus)}
    trials = read_trials(corpus / "trials.txt")
    targets = [t for t in trials if t[0] == 1]
    assert targets and all(utts[a].custom["session"] != utts[b].custom["session"] for _, a, b in targets)
    # format 3 fills max_trials with non-targets (every different-speaker pair, if fewer)
    heldout = {utts[a].speaker for _, a, b in targets}
    per_spk = Counter(u.speaker for u in utts.values() if u.speaker in heldout)
    possible = sum(per_spk[a] * per_spk[b] for a in per_spk for b in per_spk if a < b)
    nontargets = {(a, b) for y, a, b in trials if y == 0}
    assert len(nontargets) == len(trials) - len(targets) == min(CFG.max_trials - len(targets), possible)
    assert all(utts[a].speaker != utts[b].speaker for a, b in nontargets)
    # within a budget: a sample of the cross-session pairs; balanced without fill (format 2's lists)
    few = make_trials(list(utts.values()), heldout, seed=0, max_trials=len(targets))
    assert sum(y for y, *_ in few) == len(targets) // 2 == len(few) - len(targets) // 2 and all(
        utts[a].custom["session"] != utts[b].custom["session"] for y, a, b in few if y == 1)
    filled = make_trials(list(utts.values()), heldout, seed=0, max_trials=len(targets), fill=True)
    assert len(filled) == len(targets) and sum(y for y, *_ in filled) == len(targets) // 2


def test_each_shards_espeak_folder_is_dropped_however_the_shard_ends(tmp_path, monkeypatch):
    import tempfile

    import jooci.data.synth.generate as gen
    from jooci.data.synth.espeak import start_method

    assert start_method() == "fork"  # the monkeypatches below reach forked workers only

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # what the forked workers' mkdtemp uses
    cfg = SynthConfig(minutes=0.3, speakers=6, sessions=2, rooms=2, seed=2)
    synthesize(tmp_path / "ok", cfg, workers=1, progress=False)
    assert list(scratch.iterdir()) == []

    def broken(*a, **k):
        raise RuntimeError("a shard that fails half-way")

    monkeypatch.setattr(gen, "apply_channel", broken)  # inherited by the forked workers
    for workers in (1, 2):  # with 2, the pool terminates the other worker mid-shard
        with pytest.raises(RuntimeError, match="half-way"):
            synthesize(tmp_path / f"cut{workers}", SynthConfig(minutes=1, speakers=6, sessions=2, rooms=2, seed=2),
                       workers=workers, progress=False)
        assert list(scratch.iterdir()) == [] and not (tmp_path / f"cut{workers}" / "synth.json").exists()


def test_more_speakers_than_espeak_lists_voices():
    """espeak-ng lists at most 349 voices: a shard's folder holds only its own."""
    from jooci.data.synth.generate import Planner
    from jooci.data.synth.voices import MAX_VARIANTS

    cfg = SynthConfig(minutes=600, speakers=400, sessions=4, seed=0)
    plans = Planner(cfg, plan_speakers(cfg)).take(40)  # one shard
    voices = {s.variant for p in plans for s in (p.speaker, *(t.speaker for t in p.babble))}
    assert len(voices) <= MAX_VARIANTS < 400
    with pytest.raises(ValueError, match="at most"):
        voice_data("unused", {f"v{i}": p.speaker.traits for i, p in enumerate(plans * 8)})


def test_sessions_hold_every_style_and_babble_comes_from_seen_voices():
    from jooci.data.synth.generate import STYLES, Planner

    cfg = SynthConfig(minutes=60, speakers=20, sessions=4, seed=3)
    speakers = plan_speakers(cfg)
    plans = Planner(cfg, speakers).take(20 * 32)  # 32 utterances per speaker: 8 per session
    styles = defaultdict(set)
    for p in plans:
        styles[p.session.id].add(p.style.name)
    assert len(styles) == 80 and all(len(v) == len(STYLES) for v in styles.values())  # style is not the session
    seen = {s.voice for s in speakers if not (s.heldout or s.heldout_dev)}
    talkers = [(p, t) for p in plans for t in p.babble]
    assert talkers and all(t.speaker.voice in seen and t.speaker.voice != p.speaker.voice for p, t in talkers)


def test_test_sessions_set_how_much_of_a_seen_speaker_is_sid_test():
    from collections import Counter

    from jooci.data.synth.generate import SESSION_CYCLE, Planner

    cfg = SynthConfig(minutes=60, speakers=20, sessions=4, test_sessions=2, seed=3)
    speakers = plan_speakers(cfg)
    plans = Planner(cfg, speakers).take(20 * 32)  # 32 utterances per speaker: 8 per session
    seen = [p for p in plans if not (p.speaker.heldout or p.speaker.heldout_dev)]
    per_speaker = defaultdict(Counter)
    for p in seen:
        per_speaker[p.speaker.id][p.split] += 1
        assert (p.split == "test") == (p.session.id.rsplit("-s", 1)[1] in ("2", "3"))  # the last two sessions
    # half of each seen speaker's utterances are test; the other 16 follow the 4 : 1 : 3 cycle
    assert {tuple(sorted(c.items())) for c in per_speaker.values()} == {(("dev", 2), ("pretrain", 6),
                                                                          ("test", 16), ("train", 8))}
    assert Counter(SESSION_CYCLE) == {"train": 4, "dev": 1, "pretrain": 3}
    assert n_test_sessions(4) == 1 and n_test_sessions(4, 2) == 2
    assert "test_sessions" not in _config_json(SynthConfig())
    # the default and its explicit value are one corpus (the reuse check compares the config)
    assert _config_json(SynthConfig(sessions=4)) == _config_json(SynthConfig(sessions=4, test_sessions=1))
    assert _config_json(SynthConfig(sessions=4))["test_sessions"] == 1
    for bad in (SynthConfig(sessions=4, test_sessions=4), SynthConfig(test_sessions=1),
                SynthConfig(sessions=2, test_sessions=-1)):
        with pytest.raises(ValueError, match="test_sessions"):
            bad.validate()

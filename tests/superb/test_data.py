import json

import pytest
import soundfile as sf
import numpy as np

from jooci.data.manifest import Utterance, write_manifest
from jooci.superb import evaluate
from jooci.superb.data import DataFolder, TaskDataError, read_lexicon, task_splits


def _wav(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, (0.01 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    return str(p)


def test_synth_splits_follow_the_protocol(corpus):
    folder = DataFolder(corpus)
    assert folder.layout() == "synth"
    heldout = {s["id"] for s in json.loads((corpus / "speakers.json").read_text()) if s["heldout"]}
    sid = task_splits("sid", folder)
    assert not {u.speaker for u in sid.test} & heldout  # closed set: seen speakers only
    er = task_splits("er", folder)
    assert {u.speaker for u in er.test} <= heldout  # ER on held-out speakers
    asv = task_splits("asv", folder, seed=0)
    train_spk, dev_spk = {u.speaker for u in asv.train}, {u.speaker for u in asv.dev}
    assert not train_spk & dev_spk and len(dev_spk) >= 2 and not train_spk & heldout
    assert {l for l, _, _ in asv.dev_trials} == {0, 1}
    assert asv.trials and {u.id for u in asv.test} == {x for _, a, b in asv.trials for x in (a, b)}


def test_trial_list_naming_an_unknown_utterance_is_refused(corpus, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("train", "dev", "test"):
        (d / f"{name}.jsonl").write_text((corpus / f"{name}.jsonl").read_text().replace(
            '"path": "wav/', f'"path": "{corpus}/wav/'))
    lines = (corpus / "trials.txt").read_text().splitlines()
    lines.append("1 " + lines[0].split()[1] + " no-such-utterance")
    (d / "trials.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskDataError, match=r"trials.txt: 1 utterance\(s\) named in the trials are not in .*test.jsonl: "
                                            r"no-such-utterance"):
        task_splits("asv", DataFolder(d))


def test_task_without_its_labels_is_refused_before_extraction(tmp_path):
    wav = _wav(tmp_path)
    d = tmp_path / "vox"
    for split in ("sid_train", "sid_dev", "sid_test"):
        write_manifest([Utterance(id=f"{split}-{i}", path=wav, num_samples=16000, speaker=f"id1000{i % 2}")
                        for i in range(4)], d / f"{split}.jsonl")
    with pytest.raises(TaskDataError, match=r"pr needs transcribed speech .* voxceleb1 folder"):
        evaluate("fbank", d, ["pr"], tmp_path / "out")
    assert not (tmp_path / "out" / "cache").exists()  # refused before any extraction
    with pytest.raises(TaskDataError, match="asv needs a trial list"):
        task_splits("asv", DataFolder(_asv_folder(tmp_path, wav, trials=False)))
    # a JOOCI-synth-style folder whose manifests lack phones
    s = tmp_path / "nophones"
    for split in ("train", "dev", "test"):
        write_manifest([Utterance(id=f"{split}-0", path=wav, num_samples=16000, speaker="s", style="neutral")],
                       s / f"{split}.jsonl")
    with pytest.raises(TaskDataError, match=r"train.jsonl: pr needs the 'phones' label, missing for 1 of 1"):
        task_splits("pr", DataFolder(s))
    with pytest.raises(TaskDataError, match=r"asr needs the 'text' label"):
        task_splits("asr", DataFolder(s))


def _asv_folder(tmp_path, wav, trials=True):
    d = tmp_path / "asv"
    write_manifest([Utterance(id=f"t{i}", path=wav, num_samples=16000, speaker=f"s{i % 5}") for i in range(10)],
                   d / "asv_train.jsonl")
    write_manifest([Utterance(id=f"e{i}", path=wav, num_samples=16000, speaker=f"x{i % 2}") for i in range(4)],
                   d / "asv_test.jsonl")
    if trials:
        (d / "trials.txt").write_text("1 e0 e2\n0 e0 e1\n")
    return d


def test_librispeech_phones_from_a_lexicon(tmp_path):
    wav = _wav(tmp_path)
    lex = tmp_path / "lexicon.txt"
    lex.write_text(";;; comment\nHELLO  HH AH0 L OW1\nHELLO(2)  HH EH0 L OW1\nWORLD  W ER1 L D\n")
    assert read_lexicon(lex) == {"hello": ["HH", "AH", "L", "OW"], "world": ["W", "ER", "L", "D"]}
    d = tmp_path / "libri"
    for split in ("train-clean-100", "dev-clean", "test-clean"):
        write_manifest([Utterance(id=f"{split}-{i}", path=wav, num_samples=16000, speaker="19", text="hello world",
                                  words=["hello", "world"]) for i in range(3)], d / f"{split}.jsonl")
    folder = DataFolder(d)
    assert folder.layout() == "librispeech"
    with pytest.raises(TaskDataError, match="lexicon"):
        task_splits("pr", folder)
    pr = task_splits("pr", folder, lexicon=read_lexicon(lex))
    assert pr.train[0].phones == ["HH", "AH", "L", "OW", "W", "ER", "L", "D"]
    assert pr.sources["test"].endswith("test-clean.jsonl")
    asr = task_splits("asr", folder)
    assert asr.dev[0].text == "hello world"
    with pytest.raises(TaskDataError, match="words missing from the lexicon"):
        task_splits("pr", folder, lexicon={"hello": ["HH"]})


def test_voxceleb_and_iemocap_layouts(tmp_path):
    wav = _wav(tmp_path)
    asv = task_splits("asv", DataFolder(_asv_folder(tmp_path, wav)))
    assert len(asv.test) == 3 and len({u.speaker for u in asv.dev}) == 2
    d = tmp_path / "iemocap"
    for k in range(1, 6):
        write_manifest([Utterance(id=f"Ses0{k}F_x_{i}", path=wav, num_samples=16000, speaker=f"Ses0{k}F",
                                  style=("neu", "hap", "ang", "sad")[i % 4]) for i in range(10)],
                       d / f"Session{k}.jsonl")
    er = task_splits("er", DataFolder(d), er_fold=2)
    assert {u.speaker for u in er.test} == {"Ses02F"}
    assert "Ses02F" not in {u.speaker for u in er.train + er.dev} and len(er.dev) == 8
    with pytest.raises(TaskDataError, match="sid needs JOOCI-synth or VoxCeleb1"):
        task_splits("sid", DataFolder(d))

"""`jooci verify`: cosine-scored trials on a model's own embedding (fbank, teacher, JOOCI, layers)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from jooci.cli import main
from jooci.data.manifest import read_manifest
from jooci.losses.dino import DINOCenter
from jooci.models.speaker import SpeakerModel, load_speaker_folder, save_speaker_folder, speaker_config
from jooci.superb.data import TaskDataError
from jooci.superb.verify import embed_utterances, fbank_embedder, model_embedder, untrained_speaker_folder, verify
from jooci.train.loop import _save_final


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    torch.manual_seed(0)
    model = SpeakerModel(speaker_config("tiny"))
    final = tmp_path_factory.mktemp("teacher") / "final"
    _save_final("teacher", model, final, DINOCenter(model.cfg.head.out_dim))
    return final


def _trials(corpus):
    return [line.split() for line in (corpus / "trials.txt").read_text().splitlines()]


def test_batched_embeddings_equal_one_at_a_time(corpus, tiny_jooci):
    utts = read_manifest(corpus / "test.jsonl")[:6]
    for embed in (fbank_embedder(), model_embedder(tiny_jooci), model_embedder(tiny_jooci, layer=1)):
        together = embed_utterances(embed, utts, batch_seconds=60)
        alone = embed_utterances(embed, utts, batch_seconds=0.01)  # one utterance per batch
        assert together.keys() == alone.keys() == {u.id for u in utts}
        for k in together:
            assert torch.allclose(together[k], alone[k], atol=1e-4, rtol=1e-4), k


def test_every_source_scores_every_trial(corpus, tiny_jooci, tiny_baseline, tiny_teacher):
    n = len(_trials(corpus))
    for source, layer in (("fbank", None), (str(tiny_teacher), None), (str(tiny_jooci), None),
                          (str(tiny_baseline), 2)):
        r = verify(source, corpus, layer=layer)
        assert r.num_trials == n
        assert 0.0 <= r.eer <= 100.0
        assert set(r.min_dcf) == {"0.01", "0.05"}


def test_teacher_targets_read_the_distillation_targets(corpus, tiny_teacher):
    """The entropy of the teacher's centred, sharpened DINO distribution: within [0, ln K], lower
    at a sharper temperature, on the SID dev utterances."""
    from jooci.superb.verify import teacher_targets

    soft = teacher_targets(tiny_teacher, corpus, temp=0.04, utterances=3)
    sharp = teacher_targets(tiny_teacher, corpus, temp=0.001, utterances=3)
    assert soft["uniform"] == pytest.approx(math.log(128), abs=1e-3) and soft["num_utterances"] == 3
    assert 0.0 <= sharp["entropy"] < soft["entropy"] <= soft["uniform"] + 1e-6
    assert 1 / 128 <= soft["top_prob"] < sharp["top_prob"] <= 1.0


def test_bad_requests_name_the_folder(corpus, tiny_baseline, tiny_teacher, tmp_path):
    with pytest.raises(ValueError, match="no utterance embedding"):
        verify(str(tiny_baseline), corpus)
    with pytest.raises(ValueError, match="layer 99"):
        verify(str(tiny_baseline), corpus, layer=99)
    with pytest.raises(ValueError, match="teacher has no hidden-state layers"):
        verify(str(tiny_teacher), corpus, layer=1)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        verify(str(tmp_path), corpus)


def test_cli_writes_json_and_reports_errors(corpus, tiny_jooci, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["verify", "--model", "fbank", f"{tiny_jooci}:1", "--data", str(corpus), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["source"] for r in rows] == ["fbank", f"{tiny_jooci}:1"]
    assert "| fbank |" in capsys.readouterr().out
    assert main(["verify", "--model", str(tmp_path / "nowhere"), "--data", str(corpus)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_dev_trials_use_their_own_speakers(corpus, tmp_path):
    dev = [line.split() for line in (corpus / "trials_dev.txt").read_text().splitlines()]
    r = verify("fbank", corpus, trials="dev")
    assert r.num_trials == len(dev) > 0
    named = {x for _, a, b in dev for x in (a, b)}
    assert r.num_utterances == len(named)
    test_named = {x for _, a, b in _trials(corpus) for x in (a, b)}
    assert not {n.split("-")[0] for n in named} & {n.split("-")[0] for n in test_named}, "dev and test share speakers"
    # a corpus without dev speakers says what is missing
    (tmp_path / "trials.txt").write_text((corpus / "trials.txt").read_text())
    with pytest.raises(TaskDataError, match=r"heldout_dev.jsonl and trials_dev.txt"):
        verify("fbank", tmp_path, trials="dev")
    with pytest.raises(ValueError, match="'test' or 'dev'"):
        verify("fbank", corpus, trials="train")


def test_sid_probe_on_fbank_is_deterministic_and_named_by_split_sizes(corpus):
    from jooci.superb.data import DataFolder, task_splits
    from jooci.superb.verify import sid_probe

    a, b = sid_probe("fbank", corpus), sid_probe("fbank", corpus)
    assert a == b
    splits = task_splits("sid", DataFolder(corpus))
    assert (a["num_train"], a["num_test"]) == (len(splits.train), len(splits.test))
    assert 0 <= a["dev"] <= 100 and 0 <= a["test"] <= 100 and a["C"] in (0.01, 0.1, 1.0, 10.0)


def test_sid_probe_finds_speakers_in_an_embedding_that_holds_them_and_not_in_noise(corpus, monkeypatch):
    import jooci.superb.verify as V

    gen = torch.Generator().manual_seed(0)
    speakers = sorted({u.speaker for u in read_manifest(corpus / "train.jsonl")})

    def coded(noise_only):
        def embed_utterances(embed, utts, batch_seconds=32.0):
            out = {}
            for u in utts:
                v = torch.randn(16, generator=gen)
                if not noise_only:
                    v[speakers.index(u.speaker)] += 10.0  # one dimension per seen speaker
                out[u.id] = v
            return out
        return embed_utterances

    monkeypatch.setattr(V, "embedder", lambda *a, **k: None)
    monkeypatch.setattr(V, "embed_utterances", coded(False))
    assert V.sid_probe("x", corpus)["test"] == 100.0
    monkeypatch.setattr(V, "embed_utterances", coded(True))
    assert V.sid_probe("x", corpus)["test"] < 60.0


def test_sid_probe_needs_sid_splits_and_the_cli_adds_its_column(corpus, tmp_path, capsys):
    from jooci.superb.verify import sid_probe

    with pytest.raises(TaskDataError):
        sid_probe("fbank", tmp_path)
    out = tmp_path / "v.json"
    assert main(["verify", "--model", "fbank", "--data", str(corpus), "--probe", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SID probe acc % (test) |" in text and "|---|---|---|---|---|" in text
    row = json.loads(out.read_text())[0]
    assert row["sid_probe"] == sid_probe("fbank", corpus)


def test_cli_untrained_reference_scores_the_architecture_from_its_seed(corpus, tiny_teacher, tiny_jooci, tmp_path):
    """--untrained adds, after each model, the same architecture untrained (a jooci: its Other
    encoder). The tiny teacher *is* an initialisation from seed 0, so its seed-0 reference scores
    exactly the same and a seed-1 one does not."""
    out = tmp_path / "v.json"
    args = ["verify", "--model", "fbank", str(tiny_teacher), str(tiny_jooci), "--data", str(corpus), "--untrained"]
    assert main([*args, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["source"] for r in rows] == ["fbank", str(tiny_teacher), f"untrained {tiny_teacher} (seed 0)",
                                           str(tiny_jooci), f"untrained {tiny_jooci} (seed 0)"]
    assert rows[2]["eer"] == rows[1]["eer"]
    assert main([*args, "--seed", "1", "--out", str(out)]) == 0
    other = json.loads(out.read_text())
    assert other[2]["source"].endswith("(seed 1)") and other[2]["eer"] != rows[1]["eer"]
    assert other[4]["eer"] != rows[4]["eer"]  # the jooci reference follows the seed too


def test_cli_untrained_refuses_folders_without_a_reference_in_words(corpus, tmp_path, capsys):
    from jooci import hub
    from jooci.models import HuBERTBaseline, baseline_config

    hub.save_pretrained(HuBERTBaseline(baseline_config("tiny")), tmp_path / "baseline")
    assert main(["verify", "--model", str(tmp_path / "baseline"), "--data", str(corpus), "--untrained"]) == 2
    assert "a hubert_baseline folder has no untrained reference" in capsys.readouterr().err
    broken = tmp_path / "teacher"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "speaker", "format_version": 1}))  # no "config"
    assert main(["verify", "--model", str(broken), "--data", str(corpus), "--untrained"]) == 2
    assert f"{broken / 'config.json'}: missing 'config'" in capsys.readouterr().err


def _teacher(tmp_path, seed=7):
    torch.manual_seed(seed)
    model = SpeakerModel(speaker_config("tiny"))
    center = torch.randn(model.cfg.head.out_dim)
    save_speaker_folder(model, tmp_path / "teacher", center)
    return model, center


def test_untrained_reference_has_the_teachers_architecture_and_is_seeded(tmp_path):
    model, _ = _teacher(tmp_path)
    state = torch.random.get_rng_state()
    out = untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u0", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    ref, center = load_speaker_folder(out)
    assert ref.cfg == model.cfg and center is None
    # not the teacher's weights: a fresh initialisation, the same for the same seed, another for another
    w = next(k for k in ref.state_dict() if k.endswith("weight") and ref.state_dict()[k].dim() > 1)
    assert not torch.equal(ref.state_dict()[w], model.state_dict()[w])
    again = load_speaker_folder(untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u0b", seed=0))[0]
    other = load_speaker_folder(untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u1", seed=1))[0]
    assert torch.equal(again.state_dict()[w], ref.state_dict()[w])
    assert not torch.equal(other.state_dict()[w], ref.state_dict()[w])


def test_untrained_reference_is_kept_and_rebuilt_when_asked_for_another_seed(tmp_path):
    _teacher(tmp_path)
    out = untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=0)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=0)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=3)
    assert json.loads((out / "untrained.json").read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher", "u"]  # no temporary folder left


def test_untrained_reference_refuses_a_folder_that_holds_no_teacher(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "jooci", "format_version": 1, "config": {}}))
    with pytest.raises(ValueError, match="not a speaker"):
        untrained_speaker_folder(tmp_path / "m", tmp_path / "u")


def test_speaker_interval_is_the_two_way_bootstrap_over_the_trials_speakers(corpus, monkeypatch, tmp_path, capsys):
    from jooci.superb import tasks
    from jooci.superb.metrics import cluster_bootstrap_interval
    from jooci.superb.tasks.asv import score_trials

    spk = {u.id: u.speaker for u in read_manifest(corpus / "test.jsonl")}
    trials = _trials(corpus)
    plain = verify("fbank", corpus)
    assert plain.ci95_speakers is None and "ci95_speakers" not in plain.to_dict()
    assert plain.test_speakers == len({spk[t] for _, a, b in trials for t in (a, b)})
    few = verify("fbank", corpus, speaker_interval=True)  # this corpus has fewer than 10 such speakers
    assert few.test_speakers < tasks.asv.MIN_SPEAKER_CLUSTERS and few.ci95_speakers is None
    monkeypatch.setattr(tasks.asv, "MIN_SPEAKER_CLUSTERS", 2)
    r = verify("fbank", corpus, speaker_interval=True)
    utts = [u for u in read_manifest(corpus / "test.jsonl") if u.id in {x for t in trials for x in t[1:]}]
    from jooci.superb.verify import trial_set

    trial_list, _ = trial_set(corpus)
    scores, labels = score_trials(embed_utterances(fbank_embedder(), utts), trial_list)
    want = cluster_bootstrap_interval("eer", [[float(s), int(y)] for s, y in zip(scores, labels)],
                                      [(spk[a], spk[b]) for _, a, b in trial_list])
    assert r.ci95_speakers == pytest.approx(want, abs=1e-3) and r.ci95_speakers[0] <= r.eer <= r.ci95_speakers[1]
    out = tmp_path / "v.json"
    assert main(["verify", "--model", "fbank", "--data", str(corpus), "--speaker-interval", "--out", str(out)]) == 0
    assert "95 % (speakers)" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["ci95_speakers"] == pytest.approx(list(want), abs=1e-3)

"""Tests for jooci.data.dataset: crops, label alignment, collation, seconds-per-batch sampling."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from jooci.audio import AudioError
from jooci.data.dataset import (
    LABEL_PAD,
    AudioDataset,
    SecondsBatchSampler,
    collate,
    make_loader,
)
from jooci.data.manifest import Utterance

SCALE = 1e-6  # ramp step: sample i holds i * SCALE, so a crop's first value gives its offset


def _ramp_wav(path, n: int, sr: int = 16000) -> Utterance:
    # FLOAT subtype stores float32 exactly, so the ramp survives the round trip.
    sf.write(str(path), (np.arange(n) * SCALE).astype(np.float32), sr, subtype="FLOAT")
    return Utterance(id=path.stem, path=str(path), num_samples=n, sample_rate=sr,
                     speaker=f"spk-{path.stem}", style="neutral")


@pytest.fixture
def corpus(tmp_path):
    # Lengths at 16 kHz: 0.5 s, 1 s, 3 s, 5 s, 6.25 s.
    return [_ramp_wav(tmp_path / f"u{i}.wav", n) for i, n in enumerate([8000, 16000, 48000, 80000, 100000])]


def _frame_labels(utts, hop=320):
    # Label = frame index, so a cropped label row tells which frame it starts at.
    return [list(range(u.num_samples // hop)) for u in utts]


# --- AudioDataset --------------------------------------------------------------------------------

def test_min_length_filter_is_counted_and_logged(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="jooci.data.dataset"):
        ds = AudioDataset(corpus, min_samples=16000)
    assert len(ds) == 4
    assert ds.num_too_short == 1 and ds.too_short_ids == ["u0"]
    assert "dropped 1 of 5" in caplog.text and "u0" in caplog.text
    assert [ex.id for ex in (ds[i] for i in range(len(ds)))] == ["u1", "u2", "u3", "u4"]


def test_the_short_utterance_warning_is_logged_once_and_on_the_main_rank(corpus, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="jooci.data.dataset"):
        for _ in range(3):  # every phase of a run builds its dataset again
            AudioDataset(corpus, min_samples=16000)
    assert caplog.text.count("dropped 1 of 5") == 1
    caplog.clear()
    monkeypatch.setattr("jooci.data.dataset._WARNED", set())
    monkeypatch.setenv("RANK", "1")
    with caplog.at_level(logging.WARNING, logger="jooci.data.dataset"):
        ds = AudioDataset(corpus, min_samples=16000)
    assert "dropped" not in caplog.text and ds.num_too_short == 1  # counted all the same


def test_resampled_lengths(tmp_path):
    u8 = _ramp_wav(tmp_path / "a8k.wav", 8000, sr=8000)  # 1 s at 8 kHz -> 16000 samples
    u22 = _ramp_wav(tmp_path / "a22k.wav", 11025, sr=22050)  # 0.5 s at 22.05 kHz -> 8000
    u22b = _ramp_wav(tmp_path / "b22k.wav", 10001, sr=22050)  # ceil(10001*16000/22050) = 7257
    ds = AudioDataset([u8, u22, u22b])
    assert ds.full_lengths.tolist() == [16000, 8000, 7257]
    assert [ds[i].waveform.shape[0] for i in range(3)] == [16000, 8000, 7257]
    # The minimum is applied to 16 kHz lengths: 0.5 s at 22.05 kHz is 8000 samples, not 11025.
    assert [u.id for u in AudioDataset([u8, u22], min_samples=10000).utterances] == ["a8k"]


def test_random_crop_bounds_and_reproducibility(corpus):
    ds = AudioDataset(corpus, max_samples=32000, seed=3)
    assert ds.lengths.tolist() == [8000, 16000, 32000, 32000, 32000]
    offsets = {}
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ex = ds[i]
            n = ds.full_lengths[i]
            assert ex.waveform.dtype == torch.float32
            assert ex.waveform.shape[0] == min(n, 32000)
            assert 0 <= ex.offset <= max(n - 32000, 0)
            # The audio really is the crop at `offset`.
            assert round(float(ex.waveform[0]) / SCALE) == ex.offset
            assert round(float(ex.waveform[-1]) / SCALE) == ex.offset + ex.waveform.shape[0] - 1
            offsets[epoch, i] = ex.offset
    # Reproducible for (seed, epoch, index), in a fresh dataset too.
    again = AudioDataset(corpus, max_samples=32000, seed=3)
    again.set_epoch(2)
    assert [again[i].offset for i in range(5)] == [offsets[2, i] for i in range(5)]
    assert [again.crop_offset(i, epoch=1) for i in range(5)] == [offsets[1, i] for i in range(5)]
    # Different across epochs (u4 has 68000 possible offsets) and across seeds.
    assert len({offsets[e, 4] for e in range(4)}) > 1
    other = AudioDataset(corpus, max_samples=32000, seed=4)
    assert [other.crop_offset(4, epoch=e) for e in range(4)] != [offsets[e, 4] for e in range(4)]
    # Uncropped items never move.
    assert all(offsets[e, i] == 0 for e in range(4) for i in (0, 1))


def test_left_crop_without_random_crop(corpus):
    ds = AudioDataset(corpus, max_samples=32000, random_crop=False)
    for epoch in range(3):
        ds.set_epoch(epoch)
        ex = ds[4]
        assert ex.offset == 0 and ex.waveform.shape[0] == 32000
        assert round(float(ex.waveform[0]) / SCALE) == 0


@pytest.mark.parametrize("rate,hop", [(50, 320), (100, 160)])
def test_label_crop_aligned_with_audio(corpus, rate, hop):
    labels = _frame_labels(corpus, hop)
    ds = AudioDataset(corpus, max_samples=32000, labels=labels, label_rate=rate, seed=1)
    assert ds.crop_hop == hop
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ex = ds[i]
            lab = ex.labels["label"]
            assert lab.dtype == torch.int64
            audio_start = round(float(ex.waveform[0]) / SCALE)
            assert ex.offset % hop == 0 and audio_start == ex.offset
            # Frame f of the crop is frame offset/hop + f of the utterance, exactly.
            assert lab.tolist() == list(range(ex.offset // hop, ex.offset // hop + lab.shape[0]))
            expect = min(round(ex.waveform.shape[0] / hop), len(labels[i]) - ex.offset // hop)
            assert lab.shape[0] == expect


def test_several_label_sets_share_one_crop_grid(corpus):
    labels = {"mfcc": _frame_labels(corpus, 160), "hubert": _frame_labels(corpus, 320)}
    ds = AudioDataset(corpus, max_samples=32000, labels=labels, label_rate={"mfcc": 100, "hubert": 50})
    assert ds.crop_hop == 320
    for epoch in range(3):
        ds.set_epoch(epoch)
        ex = ds[4]
        assert ex.labels["hubert"][0] == ex.offset // 320
        assert ex.labels["mfcc"][0] == ex.offset // 160
        assert ex.labels["mfcc"].shape[0] == 200 and ex.labels["hubert"].shape[0] == 100


def test_label_validation(corpus):
    with pytest.raises(ValueError, match="label_rate"):
        AudioDataset(corpus, labels=_frame_labels(corpus))
    with pytest.raises(ValueError, match="4 rows for 5"):
        AudioDataset(corpus, labels=_frame_labels(corpus)[:4], label_rate=50)
    with pytest.raises(ValueError, match="whole number"):
        AudioDataset(corpus, labels=_frame_labels(corpus), label_rate=30)
    # Rows in the wrong order disagree with the audio lengths: refused, ids named.
    with pytest.raises(ValueError, match=r"u0 .*u4|u4 .*u0"):
        AudioDataset(corpus, labels=_frame_labels(corpus)[::-1], label_rate=50)


# --- collate -------------------------------------------------------------------------------------

def test_collate_shapes_and_padding(corpus):
    ds = AudioDataset(corpus, max_samples=32000, labels=_frame_labels(corpus), label_rate=50)
    items = [ds[0], ds[3], ds[1]]
    b = collate(items)
    assert len(b) == 3 and b.ids == ["u0", "u3", "u1"]
    assert b.waveforms.shape == (3, 32000) and b.waveforms.dtype == torch.float32
    assert b.lengths.tolist() == [8000, 32000, 16000] and b.lengths.dtype == torch.int64
    for row, ex in zip(b.waveforms, items, strict=True):
        n = ex.waveform.shape[0]
        assert torch.equal(row[:n], ex.waveform)
        assert torch.all(row[n:] == 0)
    assert b.padding_mask.tolist() == (torch.arange(32000)[None] >= b.lengths[:, None]).tolist()
    assert b.padding_mask[0, 7999].item() is False and b.padding_mask[0, 8000].item() is True
    lab, lab_len = b.labels["label"], b.label_lengths["label"]
    assert lab.shape == (3, 100) and lab.dtype == torch.int64
    assert lab_len.tolist() == [25, 100, 50]
    assert LABEL_PAD == -100 and torch.all(lab[0, 25:] == -100) and lab[0, :25].tolist() == list(range(25))
    assert b.offsets.tolist() == [0, items[1].offset, 0]
    assert b.speakers == ["spk-u0", "spk-u3", "spk-u1"] and b.styles == ["neutral"] * 3
    moved = b.to("cpu")
    assert moved.waveforms.device.type == "cpu" and moved.labels["label"].shape == (3, 100)


def test_collate_without_labels(corpus):
    b = collate([AudioDataset(corpus)[1]])
    assert b.labels == {} and b.label_lengths == {} and b.num_skipped == 0


# --- bad files -----------------------------------------------------------------------------------

def _with_bad_files(tmp_path, corpus, n_bad):
    bad = []
    for k in range(n_bad):
        p = tmp_path / f"bad{k}.wav"
        p.write_bytes(b"RIFF....WAVEnot really audio")
        bad.append(Utterance(id=f"bad{k}", path=str(p), num_samples=16000))
    return corpus[1:3] + bad


def test_bad_file_raises_naming_file_and_utterance(tmp_path, corpus):
    ds = AudioDataset(_with_bad_files(tmp_path, corpus, 1))
    with pytest.raises(AudioError) as err:
        ds[2]
    assert "bad0.wav" in str(err.value) and "'bad0'" in str(err.value)


def test_length_mismatch_with_manifest_is_a_bad_file(tmp_path):
    u = _ramp_wav(tmp_path / "short.wav", 16000)
    u.num_samples = 20000  # the manifest promises more than the file holds
    with pytest.raises(AudioError, match="short.wav.*manifest"):
        AudioDataset([u])[0]


def test_bad_files_skipped_up_to_threshold(tmp_path, corpus, caplog):
    ds = AudioDataset(_with_bad_files(tmp_path, corpus, 2), max_bad=1)
    with caplog.at_level(logging.WARNING, logger="jooci.data.dataset"):
        items = [ds[i] for i in range(3)]
    assert items[2] is None and ds.bad_ids == {"bad0"}
    assert "bad0.wav" in caplog.text
    b = collate(items)
    assert b.ids == ["u1", "u2"] and b.num_skipped == 1 and b.waveforms.shape[0] == 2
    assert ds[2] is None  # the same file again is not a new bad file
    with pytest.raises(AudioError, match="bad1.wav.*more than max_bad=1"):
        ds[3]


# --- SecondsBatchSampler -------------------------------------------------------------------------

def _lengths(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(32000, 250001, size=n)


def _check_budget(sampler, batches):
    for batch in batches:
        padded = len(batch) * int(sampler.lengths[batch].max())
        assert padded <= sampler.budget or len(batch) == 1


def test_sampler_budget_and_each_index_once():
    lengths = _lengths()
    s = SecondsBatchSampler(lengths, max_seconds=40, bucket_size=50)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        _check_budget(s, batches)
        assert all(len(b) * int(lengths[b].max()) <= 40 * 16000 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        # Bucketing keeps padding low: well under a quarter of the padded samples.
        padded = sum(len(b) * int(lengths[b].max()) for b in batches)
        assert 1 - lengths.sum() / padded < 0.25


def test_sampler_max_samples_caps_lengths():
    s = SecondsBatchSampler([400000, 100000, 100000], max_seconds=20, max_samples=160000, shuffle=False)
    assert s.lengths.tolist() == [160000, 100000, 100000]
    assert [sorted(b) for b in s] == [[0, 1], [2]]


def test_sampler_over_budget_item_gets_own_batch(caplog):
    with caplog.at_level(logging.WARNING, logger="jooci.data.dataset"):
        s = SecondsBatchSampler([16000, 16000 * 30, 16000, 16000], max_seconds=10, shuffle=False)
    assert "1 item(s) are longer" in caplog.text
    batches = list(s)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    _check_budget(s, batches)


def test_sampler_order_depends_on_seed_and_epoch():
    lengths = _lengths()
    a = SecondsBatchSampler(lengths, max_seconds=40, seed=1)
    b = SecondsBatchSampler(lengths, max_seconds=40, seed=1)
    c = SecondsBatchSampler(lengths, max_seconds=40, seed=2)
    assert list(a) == list(b)
    assert list(a) != list(c)
    e0 = list(a)
    a.set_epoch(1)
    assert list(a) != e0
    assert list(a) == list(a)  # iterating again within an epoch repeats it


def test_sampler_no_shuffle_is_stable():
    s = SecondsBatchSampler([16000] * 10, max_seconds=3, shuffle=False)
    first = list(s)
    s.set_epoch(5)
    assert list(s) == first == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_sampler_ranks_disjoint_and_equal(replicas, drop_last):
    lengths = _lengths(101)
    samplers = [SecondsBatchSampler(lengths, max_seconds=40, num_replicas=replicas, rank=r,
                                    drop_last=drop_last, seed=7) for r in range(replicas)]
    for epoch in range(2):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in samplers]
        n_global = len(samplers[0].global_batches())
        assert len({len(p) for p in per_rank}) == 1  # same number of steps everywhere
        assert all(len(p) == len(s) for p, s in zip(per_rank, samplers, strict=True))
        counts = Counter(i for p in per_rank for b in p for i in b)
        if drop_last:
            assert len(per_rank[0]) == n_global // replicas
            assert all(c == 1 for c in counts.values())  # disjoint
        else:
            assert len(per_rank[0]) == -(-n_global // replicas)
            assert set(counts) == set(range(101))  # everything seen
            # Only the padding batches (repeats of the first global batches) repeat items.
            pad = len(per_rank[0]) * replicas - n_global
            repeated = {i for b in samplers[0].global_batches()[:pad] for i in b}
            assert {i for i, c in counts.items() if c > 1} <= repeated
            # Without padding the ranks are disjoint.
            real = [b for r, p in enumerate(per_rank) for k, b in enumerate(p) if k * replicas + r < n_global]
            assert sorted(i for b in real for i in b) == list(range(101))


def test_sampler_rank_from_arguments_validated():
    with pytest.raises(ValueError, match="rank"):
        SecondsBatchSampler([16000], max_seconds=5, num_replicas=2, rank=2)
    s = SecondsBatchSampler([16000], max_seconds=5)
    assert (s.num_replicas, s.rank) == (1, 0)  # no process group: a single process


def test_sampler_resume_mid_epoch(tmp_path):
    lengths = _lengths()
    s = SecondsBatchSampler(lengths, max_seconds=40, seed=3, num_replicas=2, rank=1)
    s.set_epoch(2)
    full = list(s)
    it = iter(s)
    seen = [next(it) for _ in range(5)]
    assert seen == full[:5]
    state = s.state_dict()
    assert state["epoch"] == 2 and state["position"] == 5
    torch.save(state, tmp_path / "sampler.pt")
    loaded = torch.load(tmp_path / "sampler.pt", weights_only=True)

    epochs_seen = []
    fresh = SecondsBatchSampler(lengths, max_seconds=40, seed=3, num_replicas=2, rank=1,
                                epoch_callbacks=[epochs_seen.append])
    fresh.load_state_dict(loaded)
    assert epochs_seen == [2]
    assert len(fresh) == len(full) - 5
    assert list(fresh) == full[5:]
    # After the resumed epoch, iteration is back to whole epochs.
    assert list(fresh) == full
    fresh.set_epoch(3)
    s.set_epoch(3)
    assert list(fresh) == list(s)


def test_sampler_resume_with_explicit_position_and_at_epoch_end():
    lengths = _lengths()
    s = SecondsBatchSampler(lengths, max_seconds=40)
    full = list(s)
    # A loop with prefetching workers passes how many batches it has really consumed.
    fresh = SecondsBatchSampler(lengths, max_seconds=40)
    fresh.load_state_dict(s.state_dict(position=3))
    assert list(fresh) == full[3:]
    done = SecondsBatchSampler(lengths, max_seconds=40)
    done.load_state_dict(s.state_dict())  # saved after the whole epoch
    assert list(done) == []


def test_sampler_refuses_foreign_state():
    s = SecondsBatchSampler(_lengths(), max_seconds=40, seed=1)
    state = s.state_dict()
    with pytest.raises(ValueError, match="seed"):
        SecondsBatchSampler(_lengths(), max_seconds=40, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="num_replicas"):
        SecondsBatchSampler(_lengths(), max_seconds=40, seed=1, num_replicas=2, rank=0).load_state_dict(state)
    with pytest.raises(ValueError, match="num_items"):
        SecondsBatchSampler(_lengths(150), max_seconds=40, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="position"):
        s.load_state_dict({**state, "position": 10_000})


# --- make_loader ---------------------------------------------------------------------------------

def test_make_loader_end_to_end(corpus):
    loader, sampler = make_loader(corpus, max_seconds=5, min_samples=16000, max_samples=32000,
                                  labels=_frame_labels(corpus), label_rate=50, seed=5,
                                  rank=0, world_size=1)
    dataset = loader.dataset
    assert dataset.num_too_short == 1
    sampler.set_epoch(1)
    assert dataset.epoch == 1  # the sampler carries the epoch to the crops
    batches = list(loader)
    assert len(batches) == len(sampler) == len(loader)
    assert sorted(i for b in batches for i in b.ids) == ["u1", "u2", "u3", "u4"]
    for b in batches:
        assert b.waveforms.shape[0] * b.waveforms.shape[1] <= 5 * 16000
        assert b.labels["label"].shape[0] == len(b)
    # Same epoch again: same crops.
    sampler.set_epoch(1)
    again = {i: w for b in loader for i, w in zip(b.ids, b.waveforms, strict=True)}
    first = {i: w for b in batches for i, w in zip(b.ids, b.waveforms, strict=True)}
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_make_loader_with_workers(corpus):
    loader, sampler = make_loader(corpus, max_seconds=5, min_samples=16000, max_samples=32000,
                                  num_workers=2, seed=5, rank=0, world_size=1)
    sampler.set_epoch(3)
    offsets = {i: int(o) for b in loader for i, o in zip(b.ids, b.offsets, strict=True)}
    ds = loader.dataset
    # Workers crop with the epoch the sampler set in the main process.
    assert offsets == {u.id: ds.crop_offset(k, epoch=3) for k, u in enumerate(ds.utterances)}

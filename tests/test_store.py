import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from jooci.padding import pad_waveforms
from jooci.store import (
    ExtractError, IncompleteShardError, ShardWriter, SkipPolicy, StoreError, StoreWriter, TooManySkippedError,
    open_shard, open_store, shard_info,
)


def _utts(n=4, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"u{i}", rng.standard_normal((2 + 3 * i, dim)).astype(np.float32)) for i in range(n)]


@pytest.mark.parametrize("known_frames", [False, True])
def test_one_array_shard_round_trip(tmp_path, known_frames):
    utts = _utts()
    frames = sum(len(x) for _, x in utts) if known_frames else None
    with ShardWriter(tmp_path / "feat_0_1", frames=frames, meta={"source": "test"}) as w:
        for u, x in utts:
            w.add(u, x)
    shard = open_shard(tmp_path / "feat_0_1")
    assert len(shard) == 4 and shard.ids == ["u0", "u1", "u2", "u3"]
    assert isinstance(shard.features, np.memmap) and shard.features.dtype == np.float32
    assert shard.info["meta"] == {"source": "test"} and shard.info["dim"] == 3 and shard.layers is None
    for k, (u, x) in enumerate(utts):
        assert np.array_equal(shard.utterance(k), x) and np.array_equal(shard.frames(u), x)
    assert [u for u, _ in shard] == shard.ids
    # fairseq's reader: the .npy and the .len alone
    feats = np.load(tmp_path / "feat_0_1.npy")
    lens = [int(line) for line in (tmp_path / "feat_0_1.len").read_text().splitlines()]
    offsets = np.cumsum([0] + lens)
    assert np.array_equal(feats[offsets[2] : offsets[3]], utts[2][1])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left


def test_per_layer_store_round_trip_and_float16(tmp_path):
    utts = _utts(5)
    w = StoreWriter(tmp_path / "out", layers=[0, 4], dtype="float16", shard_size=2)
    for u, x in utts:
        w.add(u, {0: x, 4: -x})
    index = w.close(skipped=[{"id": "bad", "path": "bad.wav", "reason": "not audio"}])
    assert index["shards"] == ["shard_00000", "shard_00001", "shard_00002"] and index["version"] == 1
    assert json.loads((tmp_path / "out" / "index.json").read_text())["skipped"][0]["id"] == "bad"
    store = open_store(tmp_path / "out")
    assert store.ids == [u for u, _ in utts] and len(store) == 5 and "u3" in store and "zz" not in store
    got = store.frames("u3", 4)
    assert got.dtype == np.float16 and np.array_equal(got, (-utts[3][1]).astype(np.float16))
    assert [u for u, _ in store] == store.ids
    only = open_store(tmp_path / "out", layers=[4])
    assert list(only.shards[0].arrays) == [4]
    with pytest.raises(StoreError, match="no layer"):
        open_store(tmp_path / "out", layers=[1])
    with pytest.raises(ValueError, match="layers"):
        StoreWriter(tmp_path / "x", layers=[0]).add("u", utts[0][1])  # an array where layers are expected


def test_read_copies_frames_through_the_file(tmp_path):
    utts = _utts(4, dim=5)
    w = StoreWriter(tmp_path / "out", layers=[0, 2], dtype="float16", shard_size=3)
    for u, x in utts:
        w.add(u, {0: x, 2: 2 * x})
    w.close()
    for shard in open_store(tmp_path / "out").shards:
        for k in range(len(shard)):
            for layer in (0, 2):
                view = shard.utterance(k, layer)
                got = shard.read(k, layer)
                assert not isinstance(got, np.memmap) and got.flags.owndata and np.array_equal(got, view)
                assert np.array_equal(shard.read(k, layer, 1, 4), view[1:4])
                assert shard.read(k, layer, 3, 10_000).shape == (max(0, len(view) - 3), 5)  # clipped at the end
    with pytest.raises(StoreError, match="needs layer"):
        shard.read(0)
    one = tmp_path / "one"
    with ShardWriter(one) as w:
        for u, x in utts:
            w.add(u, x)
    shard = open_shard(one)
    assert np.array_equal(shard.read(3, None, 2, 5), utts[3][1][2:5])
    data = (tmp_path / "one.npy").read_bytes()
    (tmp_path / "one.npy").write_bytes(data[: len(data) - 40])  # cut short after it was opened
    with pytest.raises(StoreError, match=r"one\.npy: cut short: utterance 3"):
        shard.read(3)


def test_unmapped_shards_read_the_same_and_hold_no_file_open(tmp_path):
    import os

    utts = _utts(3, dim=4)
    w = StoreWriter(tmp_path / "out", layers=[0, 1], dtype="float16", shard_size=1)
    for u, x in utts:
        w.add(u, {0: x, 1: -x})
    w.close()
    fds = len(os.listdir("/proc/self/fd"))
    stores = [open_store(tmp_path / "out", mapped=False) for _ in range(100)]  # 600 arrays
    assert len(os.listdir("/proc/self/fd")) <= fds + 2  # no descriptor per array (a map keeps one)
    mapped = open_store(tmp_path / "out")
    for a, b in zip(stores[0].shards, mapped.shards):
        for layer in (0, 1):
            assert np.array_equal(a.read(0, layer, 1, 3), b.utterance(0, layer)[1:3])
    with pytest.raises(StoreError, match="use read"):
        stores[0].shards[0].utterance(0, 0)
    arr = tmp_path / "out" / "shard_00002.layer01.npy"
    arr.write_bytes(arr.read_bytes()[:-6])
    with pytest.raises(StoreError, match="cut short"):
        open_store(tmp_path / "out", mapped=False)


@pytest.mark.parametrize("known_frames", [False, True])
def test_writer_never_maps_the_shard_it_writes(tmp_path, known_frames):
    """Rows go through plain file writes: no mapping of the shard's files appears in
    /proc/self/maps while it is written or closed (dirty mapped pages count as resident memory)."""
    utts = _utts(6, dim=8)
    w = ShardWriter(tmp_path / "big", layers=[0, 3], dtype="float16",
                    frames=sum(len(x) for _, x in utts) if known_frames else None)

    def mapped():
        return [line for line in open("/proc/self/maps") if str(tmp_path) in line]

    for u, x in utts:
        w.add(u, {0: x, 3: x * 2})
        assert mapped() == []
    w.close()
    assert mapped() == []
    shard = open_shard(tmp_path / "big")
    assert np.array_equal(shard.utterance(5, 3), (utts[5][1] * 2).astype(np.float16))


def test_killed_writer_leaves_no_finished_shard(tmp_path):
    prefix = tmp_path / "feat_0_1"
    code = (f"import os, signal, numpy as np\nfrom jooci.store import ShardWriter\n"
            f"w = ShardWriter({str(prefix)!r}, frames=10)\nw.add('u0', np.ones((4, 2), np.float32))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode != 0
    assert shard_info(prefix) is None
    with pytest.raises(IncompleteShardError, match="unfinished"):
        open_shard(prefix)
    # redone: the writer clears what the killed one left
    with ShardWriter(prefix) as w:
        w.add("u0", np.ones((4, 2), np.float32))
    assert open_shard(prefix).ids == ["u0"] and not list(tmp_path.glob(".*tmp"))
    # rewriting a finished shard invalidates it at once; an exception aborts and removes temporaries
    with pytest.raises(RuntimeError), ShardWriter(prefix) as w:
        assert shard_info(prefix) is None
        w.add("u1", np.ones((2, 2), np.float32))
        raise RuntimeError("killed")
    assert shard_info(prefix) is None and not list(tmp_path.glob(".*tmp"))
    # a store folder without its index.json is unfinished
    w = StoreWriter(tmp_path / "store", shard_size=1)
    w.add("a", np.ones((1, 2), np.float32))
    w.add("b", np.ones((1, 2), np.float32))
    with pytest.raises(IncompleteShardError):
        open_store(tmp_path / "store")


def test_damaged_or_other_version_shard_is_refused(tmp_path):
    prefix = tmp_path / "s"
    with ShardWriter(prefix) as w:
        for u, x in _utts(3):
            w.add(u, x)
    (tmp_path / "s.len").write_text("2\n5\n")
    with pytest.raises(StoreError, match="disagree"):
        open_shard(prefix)
    info = json.loads((tmp_path / "s.json").read_text())
    (tmp_path / "s.json").write_text(json.dumps({**info, "version": 99}))
    assert shard_info(prefix) is None
    with pytest.raises(StoreError, match="version"):
        open_shard(prefix)


def test_empty_shard(tmp_path):
    ShardWriter(tmp_path / "e", frames=0).close()
    shard = open_shard(tmp_path / "e")
    assert len(shard) == 0 and shard.features.shape == (0, 0)


def test_skip_policy_limit():
    p = SkipPolicy(0.25, total=8)
    p.skip("a", "a.wav", "not audio")
    p.skip("b", "b.wav", "empty")  # 2 of 8: at the limit, not past it
    with pytest.raises(TooManySkippedError, match=r"3 of 8 files unreadable \(more than 25%\); first: a.wav: "
                                                  r"not audio; b.wav: empty; c.wav: truncated") as e:
        p.skip("c", "c.wav", "truncated")
    assert isinstance(e.value, ExtractError) and isinstance(e.value, ValueError) and len(e.value.skipped) == 3
    strict = SkipPolicy(0.0, total=100, hint="labels must cover every utterance")
    with pytest.raises(TooManySkippedError, match="labels must cover"):
        strict.skip("x", "x.wav", "bad")
    late = SkipPolicy(0.1)  # no total: checked at the end only
    for i in range(3):
        late.skip(str(i), f"{i}.wav", "bad")
    late.check(30)
    with pytest.raises(TooManySkippedError, match="3 of 20"):
        late.check(20)


def test_skip_policy_loads_audio(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "ok.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00not a wav")
    p = SkipPolicy(0.5, total=2)
    assert p.load_audio("ok", tmp_path / "ok.wav").shape == (1600,)
    assert p.load_audio("bad", tmp_path / "bad.wav") is None
    assert p.skipped[0]["id"] == "bad" and p.skipped[0]["path"].endswith("bad.wav") and p.skipped[0]["reason"]


def test_pad_waveforms():
    waves, lengths = pad_waveforms([np.ones(3, np.float32), torch.full((5,), 2.0), np.arange(2, dtype=np.float64)])
    assert waves.dtype == torch.float32 and lengths.dtype == torch.int64 and lengths.tolist() == [3, 5, 2]
    assert waves.tolist() == [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2], [0, 1, 0, 0, 0]]
    empty, n = pad_waveforms([])
    assert empty.shape == (0, 0) and n.shape == (0,)
    with pytest.raises(ValueError, match="1-D"):
        pad_waveforms([np.zeros((2, 3))])

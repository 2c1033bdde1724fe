import json

import numpy as np
import pytest
import soundfile as sf
import torch

from jooci.data.manifest import Utterance
from jooci.models import JOOCI
from jooci.extract import ExtractError, extract_manifest, extract_to_shards


def _corpus(tmp_path, n_good: int = 5, bad: bool = True) -> list[Utterance]:
    rng = np.random.default_rng(0)
    utts = []
    for i in range(n_good):
        n = 4000 + 1500 * i
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", path=str(path), num_samples=n))
    if bad:
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00not a wav")
        utts.insert(2, Utterance(id="broken", path=str(broken), num_samples=1000))
    return utts


def test_shards_hold_the_features_of_each_utterance(tmp_path):
    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path)
    out = tmp_path / "feats"
    summary = extract_to_shards(model, utts, out, layers=[0, 2, 4], batch_seconds=1.0, progress=False,
                                shard_size=3, dtype="float32", max_skipped=0.5)
    assert summary.layers == [0, 2, 4] and summary.num_utterances == 5
    assert summary.shards == ["shard_00000", "shard_00001"]
    assert [s["id"] for s in summary.skipped] == ["broken"] and "broken.wav" in summary.skipped[0]["path"]
    index = json.loads((out / "index.json").read_text())
    assert index["skipped"][0]["id"] == "broken" and index["num_frames"] == summary.num_frames
    ids = (out / "shard_00000.ids").read_text().split() + (out / "shard_00001.ids").read_text().split()
    assert ids == ["u0", "u1", "u2", "u3", "u4"]
    lens = [int(x) for x in (out / "shard_00000.len").read_text().split()]
    feats = np.load(out / "shard_00000.layer04.npy")
    assert feats.shape == (sum(lens), model.cfg.content.dim) and feats.dtype == np.float32
    # the second utterance's rows equal the model run on it alone
    from jooci.audio import load_audio

    with torch.no_grad():
        alone = model.extract_features(torch.from_numpy(load_audio(utts[1].path))[None]).hidden_states[4][0]
    np.testing.assert_allclose(feats[lens[0] : lens[0] + lens[1]], alone.numpy(), atol=1e-4)


def test_too_many_bad_files_fail_the_run_naming_them(tmp_path):
    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path, n_good=2)
    with pytest.raises(ExtractError, match="broken.wav"):
        extract_to_shards(model, utts, tmp_path / "f", progress=False, max_skipped=0.1)
    with pytest.raises(ExtractError, match="out of range"):
        extract_to_shards(model, utts[:1], tmp_path / "g", layers=[99], progress=False)


def test_extract_manifest_loads_a_model_folder(tmp_path):
    model = JOOCI.from_preset("tiny")
    model.save_pretrained(tmp_path / "model")
    utts = _corpus(tmp_path, n_good=2, bad=False)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(u.to_json() + "\n" for u in utts))
    summary = extract_manifest(tmp_path / "model", manifest, tmp_path / "out", layers=[1], progress=False)
    assert summary.num_utterances == 2 and summary.layers == [1]
    assert np.load(tmp_path / "out" / "shard_00000.layer01.npy").dtype == np.float16


def test_rerun_replaces_the_earlier_run(tmp_path):
    from jooci.store import open_store

    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path, n_good=3, bad=False)
    out = tmp_path / "feats"
    extract_to_shards(model, utts, out, layers=[1], progress=False, shard_size=1)
    assert len(list(out.glob("shard_*.len"))) == 3
    summary = extract_to_shards(model, utts[:2], out, layers=[1, 2], progress=False, shard_size=5)
    assert summary.shards == ["shard_00000"] and len(list(out.glob("shard_*.len"))) == 1
    store = open_store(out)
    assert store.ids == ["u0", "u1"] and store.layers == [1, 2] and store.index["version"] == 1


# --- long files: extracted in windows ------------------------------------------------------


@pytest.mark.parametrize("n", [400, 719, 720, 16000 * 7 + 123, 16000 * 61, 16000 * 95 + 399])
def test_windows_cover_every_frame_once_on_the_frame_grid(n):
    from jooci.extract import HOP, chunk_windows
    from jooci.features import num_frames

    windows = chunk_windows(n, chunk_seconds=2.0, context_seconds=0.5)
    covered = []
    for start, stop, first, count in windows:
        assert start % HOP == 0 and 0 <= start < stop <= n
        assert num_frames(stop - start) >= first + count  # the window holds every frame it keeps
        covered += range(start // HOP + first, start // HOP + first + count)
    assert covered == list(range(num_frames(n)))
    if num_frames(n) <= 100 + 2 * 25:
        assert windows == [(0, n, 0, num_frames(n))]
    else:  # every kept frame has the full context where the file has it
        for start, stop, first, count in windows:
            assert first == 25 or start == 0
            assert stop == n or num_frames(stop - start) - (first + count) >= 25


def _long_model_and_file(tmp_path, seconds: float, rate: int = 16000):
    model = JOOCI.from_preset("tiny").eval()
    x = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * rate))).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, rate)
    from jooci.audio import load_audio

    wav = load_audio(tmp_path / "long.wav")
    return model, Utterance(id="long", path=str(tmp_path / "long.wav"), num_samples=len(x), sample_rate=rate), wav


def test_chunked_frames_are_the_models_output_for_their_window(tmp_path):
    """A 9 s file in 2 s chunks with 1 s context: every kept frame equals the model run on its
    window (the rule), the frame count is the file's, and the difference from one pass over the
    whole file is confined to what the window does not see."""
    from jooci.extract import chunk_windows
    from jooci.features import num_frames
    from jooci.store import open_store

    model, utt, wav = _long_model_and_file(tmp_path, 9.0)
    summary = extract_to_shards(model, [utt], tmp_path / "f", progress=False, dtype="float32",
                                chunk_seconds=2.0, context_seconds=1.0)
    assert summary.chunked == 1 and summary.num_frames == num_frames(len(wav))
    store = open_store(tmp_path / "f")
    windows = chunk_windows(len(wav), 2.0, 1.0)
    assert len(windows) == 5
    n_states = len(summary.layers)
    with torch.inference_mode():
        whole = model.extract_features(torch.from_numpy(wav)[None]).hidden_states
        for start, stop, first, count in windows:
            alone = model.extract_features(torch.from_numpy(wav[start:stop])[None]).hidden_states
            row = start // 320 + first
            for k in range(n_states):
                got = store.shards[0].utterance(0, k)[row:row + count]
                np.testing.assert_allclose(got, alone[k][0, first:first + count].numpy(), rtol=1e-4, atol=1e-4)
    # not a pass over the whole file: state 0 already differs (the first CNN layer's group norm
    # normalises over the window), so chunking is never mistaken for a no-op
    got0 = store.shards[0].utterance(0, 0)
    assert not np.allclose(got0, whole[0][0].numpy(), atol=1e-4)


def test_a_file_that_fits_one_window_is_extracted_whole(tmp_path):
    model, utt, wav = _long_model_and_file(tmp_path, 4.0)
    summary = extract_to_shards(model, [utt], tmp_path / "f", progress=False, dtype="float32",
                                chunk_seconds=2.0, context_seconds=1.0)
    assert summary.chunked == 0
    with torch.inference_mode():
        whole = model.extract_features(torch.from_numpy(wav)[None]).hidden_states
    from jooci.store import open_store

    got = open_store(tmp_path / "f").shards[0].utterance(0, len(whole) - 1)
    np.testing.assert_allclose(got, whole[-1][0].numpy(), rtol=1e-5, atol=1e-5)


def test_a_file_whose_length_is_not_the_manifests_is_skipped(tmp_path):
    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path, n_good=3, bad=False)
    utts[1] = Utterance(id=utts[1].id, path=utts[1].path, num_samples=utts[1].num_samples + 320)
    summary = extract_to_shards(model, utts, tmp_path / "f", progress=False, max_skipped=0.5)
    assert [s["id"] for s in summary.skipped] == ["u1"] and "manifest" in summary.skipped[0]["reason"]
    assert summary.num_utterances == 2


@pytest.mark.slow
@pytest.mark.reliability
def test_a_three_hour_file_is_extracted_in_bounded_memory(tmp_path):
    """`jooci extract` on one 3-hour 16 kHz file (tiny preset, a subprocess): peak RSS is the
    waveform plus a bounded amount, not a function of attention over the whole file."""
    import resource
    import subprocess
    import sys

    from jooci.features import num_frames
    from jooci.store import open_store

    n = 3 * 3600 * 16000
    path = tmp_path / "3h.wav"
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
        rng = np.random.default_rng(0)
        for _ in range(3 * 60):
            f.write((0.1 * rng.standard_normal(60 * 16000)).astype(np.float32))
    (tmp_path / "m.jsonl").write_text(Utterance(id="3h", path=str(path), num_samples=n).to_json() + "\n")
    JOOCI.from_preset("tiny").save_pretrained(tmp_path / "model")
    code = ("import resource, sys; from jooci.cli import main; rc = main(sys.argv[1:]); "
            "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "extract", "--model", str(tmp_path / "model"), "--manifest",
                           str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "f"), "--no-progress"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.split("maxrss_kib")[1].split()[0]) / 1024
    store = open_store(tmp_path / "f")
    assert store.index["chunked"] == 1 and store.index["num_frames"] == num_frames(n)
    wave_mib = n * 4 / 2**20  # the float32 waveform, held whole
    print(f"3-hour file: peak RSS {peak_mib:.0f} MiB (waveform {wave_mib:.0f} MiB), "
          f"{store.index['num_frames']} frames")
    del resource
    assert peak_mib < wave_mib + 1536, peak_mib

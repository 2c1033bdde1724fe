"""The speaker model (the RDINO teacher): its own front-end. Its folder format is tested in
test_hub.py, its upstream contract in tests/test_upstreams.py, the untrained reference of a
teacher's architecture in tests/superb/test_verify.py."""

import pytest
import torch

from jooci.features import log_mel
from jooci.models.speaker import SpeakerModel, speaker_config


def test_waveforms_go_through_the_models_own_log_mel_with_its_n_mels():
    from dataclasses import replace

    cfg = speaker_config("tiny")
    model = SpeakerModel(replace(cfg, encoder=replace(cfg.encoder, n_mels=40))).eval()
    lens = torch.tensor([8000, 5000])
    wav = torch.randn(2, 8000) * (torch.arange(8000)[None] < lens[:, None])
    mel, frames = log_mel(wav, lens, rate=100, num_mel_bins=40)
    with torch.no_grad():
        a, b = model(wav, lens), model.forward_features(mel, frames)
    assert torch.equal(a.embedding, b.embedding) and torch.equal(a.head.logits, b.head.logits)
    assert model.frontend.output_lengths(lens).tolist() == frames.tolist()
    with pytest.raises(ValueError, match="forward_features"):
        model(mel, frames)  # log-mel frames given where waveforms go


def _padded(lengths, noise_past_length=0.0):
    g = torch.Generator().manual_seed(3)
    lens = torch.tensor(lengths)
    wav = 0.1 * torch.randn(len(lengths), max(lengths), generator=g)
    past = torch.arange(wav.shape[1])[None] >= lens[:, None]
    wav[past] = noise_past_length * torch.randn(int(past.sum()), generator=g)
    return wav, lens


def test_the_default_front_end_is_kaldi_fbank_and_old_configs_load_with_it():
    from jooci.models.speaker import SpeakerConfig

    cfg = speaker_config("tiny")
    assert cfg.encoder.frontend == "kaldi_fbank" and SpeakerModel(cfg).frontend.kind == "kaldi_fbank"
    d = cfg.to_dict()
    del d["encoder"]["frontend"]  # a config.json written before the field existed
    assert SpeakerConfig.from_dict(d) == cfg


def test_the_3dspeaker_front_end_feeds_rdino_log_mel_and_keeps_50_hz_states():
    from dataclasses import replace

    from jooci.features import frame_lengths, rdino_frame_lengths, rdino_log_mel

    cfg = speaker_config("tiny")
    cfg = replace(cfg, encoder=replace(cfg.encoder, n_mels=40, frontend="3dspeaker_rdino"))
    model = SpeakerModel(cfg).eval()
    wav, lens = _padded([8000, 5300, 2400])
    mel, frames = rdino_log_mel(wav, lens, num_mel_bins=40)
    with torch.no_grad():
        a, b = model(wav, lens), model.forward_features(mel, frames)
    assert torch.equal(a.embedding, b.embedding)
    assert model.frontend.output_lengths(lens).tolist() == frames.tolist() == rdino_frame_lengths(lens).tolist()
    # extract_features: the odd (centred) 100 Hz frames, as many as every other upstream's 50 Hz frames,
    # an utterance in a padded batch (loud noise past its length) as alone
    noisy, _ = _padded([8000, 5300, 2400], noise_past_length=5.0)
    with torch.no_grad():
        out = model.extract_features(noisy, lens)
        outs, _, _ = model.encoder.encode(mel, frames)
    assert out.lengths.tolist() == frame_lengths(lens, 50).tolist() == model.frame_lengths(lens).tolist()
    assert out.hidden_states[0].shape[1] == int(out.lengths.max())
    for i, n in enumerate(lens.tolist()):
        k = int(out.lengths[i])
        with torch.no_grad():
            alone = model.extract_features(noisy[i:i + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(out.hidden_states[-1][i, :k], alone.hidden_states[-1][0, :k], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.hidden_states[-1][i, :k], outs[-1][i].T[1::2][:k], atol=1e-4, rtol=1e-4)
        assert (out.hidden_states[-1][i, k:] == 0).all()
    from jooci.configio import ConfigError

    bad = cfg.to_dict()
    bad["encoder"]["frontend"] = "librosa"
    with pytest.raises(ConfigError, match="frontend"):
        type(cfg).from_dict(bad)

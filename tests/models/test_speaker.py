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

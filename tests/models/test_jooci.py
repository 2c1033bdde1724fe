import json
import time

import pytest
import torch

from jooci.models import JOOCI, HuBERTBaseline, JOOCIConfig, baseline_config, jooci_config, speaker_config
from jooci.configio import ConfigError
from jooci.models.heads import MelDecoderConfig
from jooci.models.jooci import parameter_breakdown, print_parameter_breakdown


@pytest.fixture(scope="module")
def tiny() -> JOOCI:
    torch.manual_seed(0)
    return JOOCI.from_preset("tiny")


def _batch(n: int = 2):
    lens = torch.tensor([16000, 11000, 7000][:n])
    wav = torch.randn(n, int(lens.max()))
    wav *= (torch.arange(wav.shape[1])[None] < lens[:, None])
    return wav, lens


def test_training_forward_returns_what_the_losses_need(tiny):
    tiny.train()
    wav, lens = _batch(3)
    t = int(tiny.frame_lengths(lens.max()[None])[0])
    mask = torch.rand(3, t) < 0.5
    out = tiny(wav, lens, mask, grl_lambda=0.5)
    cfg = tiny.cfg
    assert [l.shape for l in out.cluster_logits] == [(3, t, k) for k in cfg.clusters.num_clusters]
    assert out.lengths.tolist() == tiny.frame_lengths(lens).tolist()
    assert out.padding_mask.shape == (3, t) and out.padding_mask[2].sum() == t - out.lengths[2]
    assert out.embedding.shape == (3, cfg.other.ecapa.embed_dim)
    assert out.dino.logits.shape == (3, cfg.dino.out_dim) and out.dino.features.shape == (3, cfg.dino.feature_dim)
    assert out.regulariser_logits.shape == (3, t, cfg.regulariser.num_clusters)
    assert out.mel is None and out.features_penalty.dim() == 0
    assert len(out.content_states) == cfg.content.num_layers + 1
    assert len(out.other_states) == cfg.other.ecapa.num_blocks
    other = tiny.forward_other(wav, lens)
    assert other.embedding.shape == out.embedding.shape and other.dino.logits.shape == out.dino.logits.shape


def test_extract_features_contract(tiny):
    tiny.eval()
    wav, lens = _batch(2)
    f = tiny.extract_features(wav, lens)
    cfg = tiny.cfg
    assert len(f.hidden_states) == 1 + cfg.content.num_layers + cfg.other.ecapa.num_blocks
    t = f.padding_mask.shape[1]
    assert all(h.shape == (2, t, cfg.content.dim) for h in f.hidden_states)
    assert f.hidden_states[-1] is f.other_states[-1] and f.hidden_states[0] is f.content_states[0]
    assert f.embedding.shape == (2, cfg.other.ecapa.embed_dim)
    g = tiny.extract_features(wav, lens)
    assert all(torch.equal(a, b) for a, b in zip(f.hidden_states, g.hidden_states))  # deterministic


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def _zero_or_none(grads) -> bool:
    return all(g is None or g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize("append_source", ["unmasked", "masked"])
def test_other_losses_never_reach_the_content_encoder(append_source):
    from dataclasses import replace

    torch.manual_seed(0)
    model = JOOCI(replace(jooci_config("tiny"), append_source=append_source)).train()
    wav, lens = _batch(2)
    mask = torch.rand(2, int(model.frame_lengths(lens.max()[None])[0])) < 0.5
    out = model(wav, lens, mask)
    loss = out.dino.logits.logsumexp(-1).mean() + out.dino.features.pow(2).mean() \
        + out.regulariser_logits.logsumexp(-1).mean() + sum(s.pow(2).mean() for s in out.other_states)
    loss.backward()
    assert _zero_or_none(_grads(model.content)), "an Other loss reached the Content encoder"
    assert not _zero_or_none(_grads(model.other)) and not _zero_or_none(_grads(model.frontend))
    assert _zero_or_none(_grads(model.cluster_heads))


def test_content_losses_never_reach_the_other_encoder():
    torch.manual_seed(0)
    model = JOOCI.from_preset("tiny").train()
    wav, lens = _batch(2)
    mask = torch.rand(2, int(model.frame_lengths(lens.max()[None])[0])) < 0.5
    out = model(wav, lens, mask)
    (sum(l.logsumexp(-1).mean() for l in out.cluster_logits) + out.features_penalty).backward()
    assert _zero_or_none(_grads(model.other)) and _zero_or_none(_grads(model.dino_head))
    assert not _zero_or_none(_grads(model.content)) and not _zero_or_none(_grads(model.frontend))


def test_mel_decoder_is_off_by_default_and_can_be_switched_on():
    from dataclasses import replace

    cfg = replace(jooci_config("tiny"), mel_decoder=MelDecoderConfig(dim=64, hidden_dim=16))
    model = JOOCI(cfg).train()
    wav, lens = _batch(2)
    out = model(wav, lens)
    assert out.mel is not None and out.mel.shape == (2, out.padding_mask.shape[1], 80)


def test_baseline_is_the_same_parts_without_other():
    torch.manual_seed(0)
    base = HuBERTBaseline.from_preset("tiny").eval()
    assert not hasattr(base, "other")
    j = jooci_config("tiny")
    assert base.cfg.frontend == j.frontend and base.cfg.content == j.content and base.cfg.clusters == j.clusters
    assert type(base.content) is type(JOOCI.from_preset("tiny").content)
    wav, lens = _batch(2)
    f = base.extract_features(wav, lens)
    assert len(f.hidden_states) == j.content.num_layers + 1 and f.embedding is None and f.other_states == []
    out = base.train()(wav, lens, torch.zeros(2, f.padding_mask.shape[1], dtype=torch.bool))
    assert [l.shape[-1] for l in out.cluster_logits] == list(j.clusters.num_clusters)


def test_configs_round_trip_through_json_and_reject_unknown_keys():
    for preset in ("tiny", "small", "base"):
        cfg = jooci_config(preset)
        d = json.loads(json.dumps(cfg.to_dict()))
        assert JOOCIConfig.from_dict(d) == cfg
        assert type(baseline_config(preset)).from_dict(baseline_config(preset).to_dict()) == baseline_config(preset)
        assert speaker_config(preset).head == cfg.dino  # the student head can start from the teacher's
        sc = speaker_config(preset)
        assert type(sc).from_dict(json.loads(json.dumps(sc.to_dict()))) == sc
    d = jooci_config("tiny").to_dict()
    d["other"]["ecapa"]["chanels"] = 3
    with pytest.raises(ConfigError, match="chanels"):
        JOOCIConfig.from_dict(d)
    d = jooci_config("tiny").to_dict()
    d["frontend"]["norm_mode"] = "batch"
    with pytest.raises(ConfigError, match="norm_mode"):
        JOOCIConfig.from_dict(d)
    with pytest.raises(ValueError, match="channels"):
        from dataclasses import replace
        replace(jooci_config("tiny"), other=replace(jooci_config("tiny").other, ecapa=replace(
            jooci_config("tiny").other.ecapa, channels=32)))
    with pytest.raises(ValueError, match="preset"):
        jooci_config("huge")  # type: ignore[arg-type]


def test_base_has_the_paper_parameter_budget(capsys):
    counts = print_parameter_breakdown("base")  # built on the meta device
    assert 105e6 <= counts["upstream"] <= 113e6
    assert counts["frontend"] == 4_201_472  # HuBERT-Base CNN (4,200,448) + LayerNorm(512)
    assert "upstream" in capsys.readouterr().out
    with torch.device("meta"):
        base = HuBERTBaseline.from_preset("base")
    # HF facebook/hubert-base-ls960 has 94,371,712 parameters, mask embedding included.
    assert parameter_breakdown(base)["upstream"] == 94_371_712


@pytest.mark.slow  # a wall-clock bound: out of the default suite, which a busy machine must not fail
def test_tiny_step_is_fast(tiny):
    tiny.train()
    wav, lens = torch.randn(2, 32000), torch.tensor([32000, 32000])
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        out = tiny(wav, lens, torch.rand(2, 99) < 0.5)
        (sum(l.mean() for l in out.cluster_logits) + out.dino.logits.mean() + out.regulariser_logits.mean()).backward()
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5, f"tiny forward+backward of 2 x 2 s took {best:.2f} s"


def test_without_split_and_append_the_other_encoder_ignores_content():
    from dataclasses import replace

    cfg = jooci_config("tiny")
    model = JOOCI(replace(cfg, other=replace(cfg.other, append_dim=0))).eval()
    assert model.other.append_proj is None
    wav, lens = _batch(2)
    f = model.extract_features(wav, lens)
    assert len(f.other_states) == cfg.other.ecapa.num_blocks and f.embedding.shape == (2, 32)
    out = model.train()(wav, lens)
    assert out.embedding.shape == (2, 32)


def test_append_gradient_ablation_lets_other_losses_reach_content():
    """The ablation switch (model.append_gradient) undoes the stop-gradient: a loss on the Other
    embedding now reaches the Content encoder; by default it does not."""
    torch.manual_seed(0)
    wav = torch.randn(2, 8000)
    from dataclasses import replace

    for flag, reaches in ((False, False), (True, True)):
        model = JOOCI(replace(jooci_config("tiny"), append_gradient=flag)).train()
        out = model(wav, torch.tensor([8000, 6000]))
        out.embedding.sum().backward()
        grads = [p.grad for p in model.content.parameters()]
        got = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
        assert got == reaches


def test_with_untrained_other_resets_only_the_other_encoder_from_its_seed():
    """The evaluation control: Other back to an initialisation of the seed, everything else untouched."""
    from jooci.models.jooci import JOOCI, jooci_config, with_untrained_other

    torch.manual_seed(5)
    trained = JOOCI(jooci_config("tiny"))
    with torch.no_grad():
        for p in trained.other.parameters():
            p.add_(1.0)  # stands in for training
    before = {k: v.clone() for k, v in trained.named_parameters()}
    state = torch.random.get_rng_state()
    model = with_untrained_other(trained, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    after = model.state_dict()
    for k, v in before.items():  # every parameter was moved: only the Other encoder's go back
        assert torch.equal(after[k], v) == (not k.startswith("other.")), k
    again = with_untrained_other(JOOCI(jooci_config("tiny")), seed=0).other.state_dict()
    other = with_untrained_other(JOOCI(jooci_config("tiny")), seed=1).other.state_dict()
    w = next(k for k, v in again.items() if v.dim() > 1)
    assert torch.equal(again[w], after["other." + w]) and not torch.equal(other[w], again[w])

"""Training: every phase learns, resume is exact, phase 1 freezes Content, configs are strict.

The runs train on four utterances, all in every batch: the classic "can it fit a small batch"
check. On a whole corpus, a few tiny steps are too few for the losses to move past batch-to-batch
noise, and a DINO loss (teacher phase) first rises while its centre settles.
"""

import argparse
import json
from pathlib import Path

import pytest
import torch

from jooci import hub
from jooci.configio import ConfigError
from jooci.data.manifest import read_manifest, write_manifest
from jooci.targets.pipeline import TargetsConfig, make_targets
from jooci.targets.sources import mfcc_source
from jooci.train.config import load_config
from jooci.train.distributed import DistInfo
from jooci.train.loop import PhaseInputs, train_phase

STEPS = 20


def _cfg(corpus: Path, *extra: str):
    return load_config(None, [
        f"data.corpus={corpus}", "data.manifests=[six.jsonl]", "data.batch_seconds=40", "data.crop_seconds=2",
        *(f"schedule.{p}.steps={STEPS}" for p in ("content", "teacher", "phase1", "phase2")),
        *(f"schedule.{p}.lr=0.002" for p in ("content", "teacher", "phase1", "phase2")),
        *(f"schedule.{p}.warmup_steps=2" for p in ("content", "teacher", "phase1", "phase2")),
        "run.log_every=1", "run.checkpoint_every=1000", *extra])


@pytest.fixture(scope="module")
def run(synth_corpus, tmp_path_factory):
    """Targets and every phase trained once, in order, on the 1-minute corpus."""
    root = tmp_path_factory.mktemp("run")
    manifest = synth_corpus / "six.jsonl"
    write_manifest(read_manifest(synth_corpus / "train.jsonl")[:4], manifest)
    cfg = _cfg(synth_corpus)
    labels = root / "targets"
    make_targets(manifest, labels, mfcc_source(), TargetsConfig(ks=cfg.model.clusters.num_clusters, fraction=1.0),
                 progress=False)
    d = DistInfo()
    content = train_phase(cfg, "content", root / "content", PhaseInputs(labels=labels), d, manifest=manifest, progress=False)
    teacher = train_phase(cfg, "teacher", root / "teacher", PhaseInputs(), d, manifest=manifest, progress=False)
    p1 = train_phase(cfg, "phase1", root / "phase1", PhaseInputs(labels, content, teacher), d, manifest=manifest, progress=False)
    p2 = train_phase(cfg, "phase2", root / "phase2", PhaseInputs(labels, p1, teacher), d, manifest=manifest, progress=False)
    return {"root": root, "cfg": cfg, "manifest": manifest, "labels": labels, "content": content,
            "teacher": teacher, "phase1": p1, "phase2": p2}


def _losses(folder: Path, key: str = "loss") -> list[float]:
    return [json.loads(line)[key] for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("phase,key", [("content", "loss"), ("teacher", "loss"), ("phase1", "loss"),
                                       ("phase1", "objective"), ("phase2", "objective"), ("phase2", "mpl")])
def test_every_phase_loss_falls(run, phase, key):
    """Phase 2's total loss also holds the adversary's cross-entropy, which the encoder drives up
    through the gradient reversal on purpose; its objective (everything else) must fall."""
    losses = _losses(run["root"] / phase, key)
    assert len(losses) == STEPS
    k = STEPS // 4
    start, end = sum(losses[:k]) / k, sum(losses[-k:]) / k
    assert end < start, f"{phase}: {key} did not fall ({start:.3f} -> {end:.3f})"


def test_adversary_is_pushed_to_chance_or_beyond(run):
    """With the gradient reversal on, the content adversary ends no better than chance (ln K)."""
    import math

    k = run["cfg"].model.regulariser.num_clusters
    end = _losses(run["root"] / "phase2", "adversary")[-5:]
    assert sum(end) / len(end) >= math.log(k) - 0.05


def test_run_folder_contents(run):
    for phase in ("content", "phase1", "phase2"):
        folder = run["root"] / phase
        assert (folder / "config.yaml").exists() and any((folder / "tensorboard").iterdir())
        record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
        assert {"step", "loss", "lr", "grad_norm", "audio_seconds_per_second"} <= record.keys()
        assert hub.load(folder / "final") is not None
    rec = json.loads((run["root"] / "phase2" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"mpl", "distill", "adversary", "mpl/k10", "mpl_acc/k20"} <= rec.keys()


def test_phase1_freezes_content_and_phase2_trains_both(run):
    content = hub.load(run["content"]).state_dict()
    p1 = hub.load(run["phase1"])
    p2 = hub.load(run["phase2"])
    for part in ("frontend", "content"):
        for name, value in getattr(p1, part).state_dict().items():
            assert torch.equal(value, content[f"{part}.{name}"]), f"phase 1 changed {part}.{name}"
    changed = lambda a, b: any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    assert changed(p1.content, p2.content) and changed(p1.other, p2.other) and changed(p1.frontend, p2.frontend)
    fresh_other = type(p1)(p1.cfg).other
    assert changed(fresh_other, p1.other), "phase 1 trained the Other encoder"


def test_phase1_can_train_the_shared_cnn_with_content_frozen(run, tmp_path):
    """schedule.freeze_frontend_phase1=false: phase 1's Other losses train the shared CNN too,
    while the Content encoder stays bit-identical."""
    cfg = _cfg(run["manifest"].parent, "schedule.freeze_frontend_phase1=false", "schedule.phase1.steps=3")
    out = train_phase(cfg, "phase1", tmp_path / "p1", PhaseInputs(run["labels"], run["content"], run["teacher"]),
                      DistInfo(), manifest=run["manifest"], progress=False)
    before, after = hub.load(run["content"]), hub.load(out)
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    assert same(before.content, after.content) and same(before.cluster_heads, after.cluster_heads)
    assert not same(before.frontend, after.frontend)


def test_unfrozen_content_keeps_its_masked_prediction_in_phase1(run, tmp_path):
    """What the demo's `unfrozen-phase1` ablation trains: with Content not frozen, phase 1 runs the
    joint step (Content's masked prediction + the Other losses), so Content changes and the MPL is
    logged; frozen, it is bit-identical and no MPL is logged. (Unfreezing alone would be a no-op:
    the Other losses cannot reach Content through the detached appends.)"""
    inputs = PhaseInputs(run["labels"], run["content"], run["teacher"])
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # noqa: E731
    before = hub.load(run["content"])
    for frozen in (True, False):
        cfg = _cfg(run["manifest"].parent, f"schedule.freeze_content_phase1={str(frozen).lower()}",
                   "schedule.phase1.steps=2", "run.log_every=1")
        folder = tmp_path / f"p1-{frozen}"
        out = train_phase(cfg, "phase1", folder, inputs, DistInfo(), manifest=run["manifest"], progress=False)
        assert same(before.content, hub.load(out).content) is frozen
        logged = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
        assert ("mpl" in logged) is not frozen and "distill" in logged


def test_a_run_folder_is_not_reused_or_resumed_under_another_config(run):
    """A finished phase is reused only for the config it was trained with: rerunning after a change
    (another frontend, other steps) names the difference instead of keeping the old model. Where
    it runs and how often it logs may change."""
    from jooci.configio import ConfigError

    corpus, inputs = run["manifest"].parent, PhaseInputs(labels=run["labels"])
    folder = run["content"].parent
    same = train_phase(_cfg(corpus, "run.log_every=5", "run.device=cpu"), "content", folder, inputs, DistInfo(),
                       manifest=run["manifest"], progress=False)
    assert same == run["content"]
    with pytest.raises(ConfigError, match=r"different config \(schedule\.content\.steps: 20 there, 7 now\)"):
        train_phase(_cfg(corpus, "schedule.content.steps=7"), "content", folder, inputs, DistInfo(),
                    manifest=run["manifest"], progress=False)
    with pytest.raises(ConfigError, match="model.frontend.kind: 'cnn' there, 'mel' now"):
        train_phase(_cfg(corpus, "model.frontend.kind=mel", "model.content.input_dim=80", "model.other.input_dim=80"),
                    "content", folder, inputs, DistInfo(), manifest=run["manifest"], progress=False)


@pytest.mark.parametrize("phase", ["content", "teacher", "phase2"])
def test_resume_is_exact(run, phase, tmp_path):
    """Stopped after 3 of 6 steps and resumed: steps 4-6 repeat the uninterrupted run's losses."""
    cfg = _cfg(run["manifest"].parent, *(f"schedule.{p}.steps=6" for p in ("content", "teacher", "phase2")),
               "run.checkpoint_every=3")
    inputs = {"content": PhaseInputs(labels=run["labels"]), "teacher": PhaseInputs(),
              "phase2": PhaseInputs(run["labels"], run["phase1"], run["teacher"])}[phase]
    d = DistInfo()
    train_phase(cfg, phase, tmp_path / "straight", inputs, d, manifest=run["manifest"], progress=False)
    out = train_phase(cfg, phase, tmp_path / "resumed", inputs, d, manifest=run["manifest"], stop_after=3, progress=False)
    assert not (out / "final").exists() and len(_losses(out)) == 3
    train_phase(cfg, phase, tmp_path / "resumed", inputs, d, manifest=run["manifest"], progress=False)
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6, (a, b)
    sa = hub.load(tmp_path / "straight" / "final").state_dict() if phase != "teacher" else None
    if sa is not None:
        sb = hub.load(tmp_path / "resumed" / "final").state_dict()
        assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


def test_finished_phase_is_skipped(run):
    stamp = (run["content"] / "model.safetensors").stat().st_mtime
    d = DistInfo()
    assert train_phase(run["cfg"], "content", run["root"] / "content", PhaseInputs(labels=run["labels"]), d,
                       manifest=run["manifest"], progress=False) == run["content"]
    assert (run["content"] / "model.safetensors").stat().st_mtime == stamp


def test_misspelled_key_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("preset: tiny\noptim:\n  clipp: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "optim.clipp" in str(info.value) and str(p) in str(info.value)
    with pytest.raises(ConfigError, match="schedule.phase3"):
        load_config(None, ["schedule.phase3.steps=3"])
    with pytest.raises(ConfigError, match="model.content.transformer.num_layers: expected"):
        load_config(None, ["model.content.transformer.num_layers=two"])


def test_labels_are_required_and_checked(run, tmp_path):
    d = DistInfo()
    with pytest.raises(ValueError, match="needs labels"):
        train_phase(run["cfg"], "content", tmp_path / "x", PhaseInputs(), d, manifest=run["manifest"], progress=False)


def test_teacher_step_takes_a_batch_of_one_utterance():
    """An epoch's last batch can hold one utterance: the RDINO regulariser (a spread across items)
    is 0 there instead of a crash deep in the teacher phase (it once stopped a run at step 218)."""
    import copy

    from jooci.data.dataset import Batch
    from jooci.losses.dino import DINOCenter
    from jooci.models.speaker import SpeakerModel, speaker_config
    from jooci.train.config import LossConfig
    from jooci.train.steps import StepContext, teacher_step

    torch.manual_seed(0)
    student = SpeakerModel(speaker_config("tiny"))
    teacher = copy.deepcopy(student).eval()
    center = DINOCenter(student.cfg.head.out_dim)
    ctx = StepContext(LossConfig(), torch.Generator().manual_seed(0), rdino_weight=0.1)
    for b in (1, 3):
        wav = torch.randn(b, 16000 * 4) * 0.1
        batch = Batch(wav, torch.full((b,), wav.shape[1]), [f"u{i}" for i in range(b)], torch.zeros(b, dtype=torch.long))
        out = teacher_step(student, teacher, center, batch, ctx)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert (out.metrics["rdino_reg"] == 0.0) == (b == 1)


def test_phase1_and_phase2_steps_take_a_batch_of_one_utterance():
    """The same last batch of one utterance in phases 1-2: the DINO head (BatchNorm) runs on the
    crops only, never on the full batch, so a batch of one trains (it once stopped seed 2's demo at
    phase-1 step 42 with "Expected more than 1 value per channel")."""
    import copy

    import jooci.train.steps as S
    from jooci.data.dataset import Batch
    from jooci.losses.dino import DINOCenter
    from jooci.models import JOOCI
    from jooci.models.speaker import SpeakerModel, speaker_config
    from jooci.train.config import LossConfig

    torch.manual_seed(0)
    teacher = SpeakerModel(speaker_config("tiny")).eval()
    jooci = JOOCI.from_preset("tiny").train()
    rows = {"dino": [], "adversary": []}  # the batch size of every call of each head
    jooci.dino_head.register_forward_hook(lambda m, a, o: rows["dino"].append(a[0].shape[0]))
    jooci.regulariser.register_forward_hook(lambda m, a, o: rows["adversary"].append(a[0][0].shape[0]))
    for b in (1, 2):
        wav = torch.randn(b, 16000 * 3) * 0.1
        labels = {k: torch.randint(0, 10, (b, 150)) for k in ("km10", "km20")}
        batch = Batch(wav, torch.full((b,), wav.shape[1]), [f"u{i}" for i in range(b)], torch.zeros(b, dtype=torch.long),
                      labels)
        for step in (S.phase1_step, S.phase2_step):
            ctx = S.StepContext(LossConfig(), torch.Generator().manual_seed(0), label_names=tuple(labels))
            rows["dino"].clear(), rows["adversary"].clear()
            out = step(jooci, copy.deepcopy(teacher), DINOCenter(teacher.cfg.head.out_dim), batch, ctx)
            crops = ctx.losses.crops
            # the head once per crop group (globals stacked, locals stacked), the adversary once on the batch
            assert rows["dino"] == [crops.n_global * b, crops.n_local * b], (step.__name__, rows)
            assert rows["adversary"] == [b], (step.__name__, rows)
            assert torch.isfinite(out.loss), (step.__name__, b)
            jooci.zero_grad()
            out.loss.backward()
            # the DINO head learns from the crops, the adversary from the full batch
            assert jooci.dino_head.bottleneck.weight.grad is not None and jooci.regulariser.net[0].weight.grad is not None


def test_crops_the_dino_heads_batchnorm_cannot_train_on_are_refused(tmp_path):
    from jooci.train.config import load_config

    for bad in ("losses.crops.n_global=1", "losses.crops.n_local=1"):
        with pytest.raises(ValueError, match="needs two rows per crop group"):
            load_config(None, [bad])
    load_config(None, ["losses.crops.n_local=0"])  # no local crops at all is fine


def test_a_phase_batches_by_its_own_batch_seconds(run, tmp_path, monkeypatch):
    """`schedule.teacher.batch_seconds` sizes the teacher's batches; the other phases keep data.batch_seconds."""
    import jooci.train.loop as L

    asked = []

    def capture(utts, **kw):
        asked.append(kw["max_seconds"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(L, "make_loader", capture)
    cfg = _cfg(run["manifest"].parent, "schedule.teacher.batch_seconds=7")
    for phase, inputs in (("teacher", PhaseInputs()), ("content", PhaseInputs(labels=run["labels"]))):
        with pytest.raises(RuntimeError, match="stop here"):
            train_phase(cfg, phase, tmp_path / phase, inputs, DistInfo(), manifest=run["manifest"], progress=False)
    assert asked == [7.0, 40.0]


def test_teacher_and_distillation_views_are_augmented_by_their_own_switch(monkeypatch):
    """`losses.augment_teacher_views` augments the teacher phase's views only, `losses.augment_views`
    phases 1-2's only."""
    import copy

    import jooci.train.steps as S
    from jooci.data.dataset import Batch
    from jooci.losses.dino import DINOCenter
    from jooci.models import JOOCI
    from jooci.models.speaker import SpeakerModel, speaker_config
    from jooci.train.config import LossConfig

    calls = []
    real = S.augment
    monkeypatch.setattr(S, "augment", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    student = SpeakerModel(speaker_config("tiny"))
    teacher = copy.deepcopy(student).eval()
    jooci = JOOCI.from_preset("tiny")
    wav = torch.randn(2, 16000 * 4) * 0.1
    labels = {k: torch.randint(0, 10, (2, 200)) for k in ("km10", "km20")}  # the adversary's targets (50 Hz)
    batch = Batch(wav, torch.full((2,), wav.shape[1]), ["a", "b"], torch.zeros(2, dtype=torch.long), labels)
    for teacher_aug, views_aug in ((True, False), (False, True)):
        losses = LossConfig(augment_teacher_views=teacher_aug, augment_views=views_aug)
        ctx = lambda: S.StepContext(losses, torch.Generator().manual_seed(0), label_names=tuple(labels))  # noqa: E731
        calls.clear()
        S.teacher_step(student, teacher, DINOCenter(student.cfg.head.out_dim), batch, ctx())
        assert bool(calls) is teacher_aug
        calls.clear()
        S.phase1_step(jooci, teacher, DINOCenter(student.cfg.head.out_dim), batch, ctx())
        assert bool(calls) is views_aug


def test_confusion_adversary_trains_decoder_on_ce_and_encoder_on_confusion_only():
    """`losses.adversary=confusion`: the decoder learns its cross-entropy, the Other encoder only
    the ramped confusion term (no reversed cross-entropy reaches it)."""
    import jooci.train.steps as S
    from jooci.data.dataset import Batch
    from jooci.losses.dino import DINOCenter
    from jooci.losses.regulariser import adversary_loss, confusion_loss
    from jooci.models import JOOCI
    from jooci.models.speaker import SpeakerModel, speaker_config
    from jooci.train.config import LossConfig

    torch.manual_seed(0)
    teacher = SpeakerModel(speaker_config("tiny")).eval()
    jooci = JOOCI.from_preset("tiny").eval()  # eval: BatchNorm and dropout the same in every pass
    wav = torch.randn(2, 16000 * 3) * 0.1
    labels = {k: torch.randint(0, 10, (2, 150)) for k in ("km10", "km20")}
    batch = Batch(wav, torch.full((2,), wav.shape[1]), ["a", "b"], torch.zeros(2, dtype=torch.long), labels)
    losses = LossConfig(distill=0.0, adversary="confusion")
    lam = 0.5
    ctx = S.StepContext(losses, torch.Generator().manual_seed(0), label_names=tuple(labels), grl_lambda=lam)
    out = S.phase1_step(jooci, teacher, DINOCenter(teacher.cfg.head.out_dim), batch, ctx)
    assert "confusion" in out.metrics
    jooci.zero_grad()
    out.loss.backward()
    got = {n: p.grad.clone() for n, p in jooci.named_parameters() if p.grad is not None}

    # the same two terms by hand, each on its own side
    jooci.zero_grad()
    full = jooci.forward_other(S._quantized(batch).waveforms, batch.lengths, grl_lambda=0.0, dino=False,
                               other_trains_frontend=False)
    targets = S._align(labels["km20"], full.regulariser_logits.shape[1])
    ce = adversary_loss(full.regulariser_logits, targets, full.padding_mask).loss
    conf = confusion_loss(jooci.regulariser.confusion_logits(full.other_states), full.padding_mask)
    (ce + lam * conf).backward()
    want = {n: p.grad.clone() for n, p in jooci.named_parameters() if p.grad is not None}
    for n, p in jooci.named_parameters():  # a term weighted 0 leaves zeros where the other pass leaves None
        zero = torch.zeros_like(p)
        torch.testing.assert_close(got.get(n, zero), want.get(n, zero), msg=n)
    assert any(n.startswith("other.") for n in got) and "regulariser.net.0.weight" in got
    # the encoder side holds no cross-entropy: without the confusion term it gets nothing
    jooci.zero_grad()
    full = jooci.forward_other(S._quantized(batch).waveforms, batch.lengths, grl_lambda=0.0, dino=False)
    adversary_loss(full.regulariser_logits, targets, full.padding_mask).loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for n, p in jooci.named_parameters() if n.startswith("other."))


@pytest.mark.parametrize("term, switch", [("regulariser", "adversary_trains_frontend"),
                                          ("distill", "distill_trains_frontend")])
def test_which_other_losses_train_the_shared_frontend(term, switch):
    """Phase 2: the adversary's reversed gradient stops at the shared frontend by default, the
    distillation's reaches it; each by its own switch. Measured as the frontend's gradient of the
    phase-2 loss with the term against the same loss without it (masked prediction alone)."""
    import jooci.train.steps as S
    from jooci.data.dataset import Batch
    from jooci.losses.dino import DINOCenter
    from jooci.models import JOOCI
    from jooci.models.speaker import SpeakerModel, speaker_config
    from jooci.train.config import LossConfig

    torch.manual_seed(0)
    teacher = SpeakerModel(speaker_config("tiny")).eval()
    jooci = JOOCI.from_preset("tiny").eval()  # eval: dropout off, the same function in every pass
    wav = torch.randn(2, 16000 * 3) * 0.1
    labels = {k: torch.randint(0, 10, (2, 150)) for k in ("km10", "km20")}
    batch = Batch(wav, torch.full((2,), wav.shape[1]), ["a", "b"], torch.zeros(2, dtype=torch.long), labels)

    def frontend_grad(**losses) -> torch.Tensor:
        cfg = LossConfig(**{"distill": 0.0, "regulariser": 0.0, **losses})
        ctx = S.StepContext(cfg, torch.Generator().manual_seed(0), label_names=tuple(labels), grl_lambda=1.0)
        jooci.zero_grad()
        S.phase2_step(jooci, teacher, DINOCenter(teacher.cfg.head.out_dim), batch, ctx).loss.backward()
        other = [p.grad for n, p in jooci.named_parameters() if n.startswith("other.")]
        assert any(g is not None and g.abs().sum() > 0 for g in other) == (losses.get(
            "distill", 0) > 0 or losses.get("regulariser", 0) > 0)  # the Other encoder itself learns the term
        return torch.cat([p.grad.flatten() for p in jooci.frontend.parameters()])

    alone = frontend_grad()
    default = frontend_grad(**{term: 1.0})
    switched = frontend_grad(**{term: 1.0, switch: not getattr(LossConfig(), switch)})
    on, off = (switched, default) if term == "regulariser" else (default, switched)
    torch.testing.assert_close(off, alone, rtol=0, atol=0)  # stopped: exactly masked prediction's gradient
    assert (on - alone).norm() > 1e-3 * alone.norm()


def test_unknown_adversary_objective_is_refused():
    from jooci.configio import ConfigError
    from jooci.train.config import load_config

    assert load_config(None, ["losses.adversary=confusion"]).losses.adversary == "confusion"
    with pytest.raises((ConfigError, ValueError), match="adversary"):
        load_config(None, ["losses.adversary=bogus"])


def test_an_external_teacher_replaces_the_teacher_phase(synth_corpus, tmp_path, monkeypatch):
    """run.teacher_init (a teacher trained elsewhere, as the paper's RDINO): --all trains no teacher
    and gives that folder to phases 1 and 2; the baseline never sees a teacher."""
    import jooci.train.pipeline as pipeline

    manifest = synth_corpus / "six.jsonl"
    if not manifest.exists():
        write_manifest(read_manifest(synth_corpus / "train.jsonl")[:4], manifest)
    calls = []

    def fake_phase(cfg, phase, out, inputs, dist, manifest=None, progress=True):
        calls.append((phase, out.name, inputs.teacher))
        (out / "final").mkdir(parents=True, exist_ok=True)
        (out / "final" / "config.json").write_text("{}")
        return out / "final"

    monkeypatch.setattr(pipeline, "train_phase", fake_phase)
    from jooci.models.speaker import SpeakerModel, save_speaker_folder

    external = tmp_path / "elsewhere" / "teacher"
    cfg = _cfg(synth_corpus, "schedule.content_iterations=1", f"run.teacher_init={external}")
    with pytest.raises(ValueError, match="elsewhere/teacher: the teacher folder does not exist"):
        pipeline.run_all(cfg, tmp_path / "run", DistInfo(), progress=False)  # refused before any training
    assert calls == [] and not (tmp_path / "run").exists()
    save_speaker_folder(SpeakerModel(cfg.teacher), external)
    pipeline.run_all(cfg, tmp_path / "run", DistInfo(), progress=False)
    assert [(p, o) for p, o, _ in calls] == [("content", "content-1"), ("phase1", "phase1"), ("phase2", "phase2"),
                                             ("content", "baseline-extra")]
    assert [t for p, _, t in calls if p.startswith("phase")] == [external, external]
    assert calls[-1][2] is None and not (tmp_path / "run" / "teacher").exists()

    calls.clear()
    pipeline.run_all(_cfg(synth_corpus, "schedule.content_iterations=1"), tmp_path / "own", DistInfo(), progress=False)
    own = tmp_path / "own" / "teacher" / "final"
    assert ("teacher", "teacher", None) in calls
    assert [t for p, _, t in calls if p.startswith("phase")] == [own, own]
    # the demo and the benchmarks find the teacher the same way
    assert pipeline.teacher_folder(cfg, tmp_path / "run") == external
    assert pipeline.teacher_folder(_cfg(synth_corpus), tmp_path / "own") == own


def test_an_unusable_external_teacher_is_refused_with_its_problem_named(synth_corpus, tmp_path, capsys):
    from jooci.models.speaker import SpeakerModel, save_speaker_folder
    from jooci.cli.pretrain import add_arguments as add_pretrain_arguments
    from jooci.cli.pretrain import run as run_pretrain

    other = tmp_path / "wide-teacher"
    wide = _cfg(synth_corpus, "teacher.encoder.ecapa.channels=48").teacher
    save_speaker_folder(SpeakerModel(wide), other)
    parser = argparse.ArgumentParser()
    add_pretrain_arguments(parser)
    args = parser.parse_args(["--all", "--out", str(tmp_path / "run"), f"run.teacher_init={other}"])
    assert run_pretrain(args) == 2
    err = capsys.readouterr().err
    assert "wide-teacher: the teacher's architecture differs" in err and "teacher.encoder.ecapa.channels: 48" in err
    assert not (tmp_path / "run").exists()  # nothing was trained

    # a damaged folder: only its config copied; then weights that are not safetensors
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text((other / "config.json").read_text())
    args = parser.parse_args(["--all", "--out", str(tmp_path / "run"), f"run.teacher_init={tmp_path / 'half'}"])
    assert run_pretrain(args) == 2
    assert "half: not a teacher folder (no model.safetensors)" in capsys.readouterr().err
    (tmp_path / "half" / "model.safetensors").write_bytes(b"not safetensors")
    assert run_pretrain(args) == 2
    assert "half: cannot read the teacher folder" in capsys.readouterr().err
    # --phase reads --teacher, and checks it before training too
    args = parser.parse_args(["--phase", "phase1", "--out", str(tmp_path / "p1"), "--teacher", str(other)])
    assert run_pretrain(args) == 2
    assert "wide-teacher: the teacher's architecture differs" in capsys.readouterr().err
    args = parser.parse_args(["--phase", "phase1", "--out", str(tmp_path / "p1"), f"run.teacher_init={other}"])
    assert run_pretrain(args) == 2
    assert "--phase phase1 needs --teacher FOLDER" in capsys.readouterr().err
    assert not (tmp_path / "p1").exists()


def test_a_wrong_noise_or_rir_folder_is_refused_before_any_training(synth_corpus, tmp_path, capsys, caplog):
    from jooci.cli.pretrain import add_arguments as add_pretrain_arguments
    from jooci.cli.pretrain import run as run_pretrain
    from jooci.train.pipeline import check_sound_folders

    parser = argparse.ArgumentParser()
    add_pretrain_arguments(parser)
    missing = tmp_path / "musan-typo"
    args = parser.parse_args(["--all", "--out", str(tmp_path / "run"), f"losses.augment.noise_dir={missing}"])
    assert run_pretrain(args) == 2
    assert f"{missing}: noise folder (losses.augment.noise_dir) not found" in capsys.readouterr().err
    (tmp_path / "rirs").mkdir()
    args = parser.parse_args(["--phase", "content", "--out", str(tmp_path / "run"),
                              f"losses.augment.rir_dir={tmp_path / 'rirs'}"])
    assert run_pretrain(args) == 2
    assert "rirs: no .wav impulse response in it" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was trained
    # a usable folder with both switches off: accepted, with a warning that it is unused
    import numpy as np
    import soundfile as sf

    sf.write(str(tmp_path / "rirs" / "r.wav"), np.r_[1.0, 0.5, 0.25].astype(np.float32), 16000)
    cfg = _cfg(synth_corpus, f"losses.augment.rir_dir={tmp_path / 'rirs'}", "losses.augment_teacher_views=false")
    check_sound_folders(cfg)
    assert "the folders are not used" in caplog.text


@pytest.mark.parametrize("terminal", [False, True])
def test_a_log_file_gets_one_plain_line_per_record(run, tmp_path, monkeypatch, caplog, terminal):
    """Under a batch scheduler (stderr not a terminal) each metrics record is also one plain log
    line with the step, the losses, the throughput and an ETA; a terminal gets the progress bar."""
    import logging

    import jooci.train.loop as L

    monkeypatch.setattr(L, "is_terminal", lambda: terminal)
    cfg = _cfg(run["manifest"].parent, "schedule.content.steps=4", "run.log_every=2")
    with caplog.at_level(logging.INFO, logger="jooci.train.loop"):
        out = train_phase(cfg, "content", tmp_path / "c", PhaseInputs(labels=run["labels"]), DistInfo(),
                          manifest=run["manifest"], progress=True)
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage() and "ETA" in r.getMessage()]
    if terminal:
        assert lines == []
        return
    records = _losses(out.parent)
    assert [line.split()[2] for line in lines] == [f"{s}/4" for s in (1, 2, 4)] and len(records) == 3
    assert lines[0].startswith("content step 1/4 (25 %): loss ")
    assert f"loss {records[1]:.4g}" in lines[1] and "audio-s/s" in lines[1] and lines[-1].endswith("ETA 0:00:00")


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_jooci_pretrain_logs_plain_progress_unless_told_not_to(run, tmp_path, caplog, flag):
    import logging

    from jooci.cli import main

    argv = ["pretrain", "--config", "tiny", "--phase", "content", "--manifest", str(run["manifest"]),
            "--labels", str(run["labels"]), "--out", str(tmp_path / "c"), *flag,
            "schedule.content.steps=2", "run.log_every=1"]
    with caplog.at_level(logging.INFO, logger="jooci.train.loop"):
        assert main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("content step ")]
    assert len(lines) == (0 if flag else 2), lines

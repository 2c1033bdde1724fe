"""Run by tests/train/test_ddp.py under torchrun (2 gloo processes) or alone; not a test module.

``python ddp_worker.py step OUT``: one content step on a fixed 4-utterance batch (each of 2 ranks
takes 2 utterances, a single process takes all 4), then one SGD update; rank 0 saves the
parameters to OUT.

``python ddp_worker.py nan|nan-value OUT CORPUS LABELS``: a 4-step content run through the real
loop where rank 1's loss is NaN at the second step: through the graph (``nan``: its gradients are
NaN too, and the gradient all-reduce carries them to rank 0) or as a constant added to the loss
(``nan-value``: gradients stay finite, so only the collective skip keeps the ranks together); each
rank saves its final parameters to
OUT/rank{R}.pt.

``python ddp_worker.py reg OUT``: RDINO's regulariser on the rows of a DDP-wrapped linear layer,
rank 0 holding 3 utterances and rank 1 two (a single process: all 5), gathered across ranks;
rank 0 saves the loss and the layer's gradient to OUT.

``python ddp_worker.py targets OUT CORPUS [fail]``: the ``--all`` run's MFCC targets stage
(:func:`jooci.train.pipeline.make_stage_targets`) for CORPUS/all.jsonl into OUT, every rank
dumping and labelling its own shard; with ``fail``, rank 1's dump raises (a damaged file).

``python ddp_worker.py timeout OUT``: a process group with a 2-second timeout in which rank 1
arrives at a barrier 10 s late; rank 0 writes the error it got to OUT.
"""

import math
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

import jooci.train.loop as L
from jooci.data.dataset import Batch
from jooci.train import steps as S
from jooci.train.config import load_config
from jooci.train.distributed import all_reduce_sum_, init_distributed, shutdown
from jooci.train.loop import PhaseInputs, PhaseModule, build_phase_models, train_phase

NO_DROPOUT = ["model.content.projection_dropout=0", "model.content.transformer.dropout=0",
              "model.content.transformer.attention_dropout=0", "model.content.transformer.layerdrop=0"]


def fixed_batch() -> Batch:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([16000, 12000, 14000, 9000])
    wav = torch.randn(4, 16000, generator=g) * 0.1
    wav[torch.arange(16000)[None, :] >= lengths[:, None]] = 0
    labels = {f"k{k}": torch.randint(0, k, (4, 49), generator=g) for k in (10, 20)}
    return Batch(wav, lengths, [f"u{i}" for i in range(4)], torch.zeros(4, dtype=torch.long), labels)


def one_step(out: Path) -> None:
    dist = init_distributed("cpu")
    cfg = load_config(None, NO_DROPOUT)
    torch.manual_seed(0)
    model, _, _ = build_phase_models(cfg, "content", PhaseInputs())
    batch = fixed_batch()
    if dist.distributed:
        keep = slice(2 * dist.rank, 2 * dist.rank + 2)
        batch = Batch(batch.waveforms[keep], batch.lengths[keep], batch.ids[keep], batch.offsets[keep],
                      {k: v[keep] for k, v in batch.labels.items()})
    module = PhaseModule("content", model, None, None)
    if dist.distributed:
        module = DDP(module)
    ctx = S.StepContext(losses=cfg.losses, generator=torch.Generator().manual_seed(0), seed=0, step=0,
                        label_names=("k10", "k20"), world_size=dist.world_size,
                        reduce=(lambda t: all_reduce_sum_(t, dist)) if dist.distributed else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    module(batch, ctx).loss.backward()
    opt.step()
    if dist.is_main:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
    shutdown(dist)


def nan_run(out: Path, corpus: Path, labels: Path, through_graph: bool) -> None:
    dist = init_distributed("cpu")
    real_step = S.content_step

    def step_with_nan(model, batch, ctx):
        result = real_step(model, batch, ctx)
        if dist.rank == 1 and ctx.step == 1:
            result.loss = result.loss * math.nan if through_graph else result.loss + math.nan
        return result

    S.content_step = step_with_nan
    built = []
    real_build = L.build_phase_models

    def build(*args, **kwargs):
        model, *rest = real_build(*args, **kwargs)
        built.append(model)
        return (model, *rest)

    L.build_phase_models = build
    cfg = load_config(None, [f"data.corpus={corpus}", "data.manifests=[all.jsonl]", "data.batch_seconds=4",
                             "schedule.content.steps=4", "run.log_every=1", "run.checkpoint_every=100"])
    train_phase(cfg, "content", out, PhaseInputs(labels=labels), dist, manifest=corpus / "all.jsonl", progress=False)
    torch.save({k: v.detach().clone() for k, v in built[-1].state_dict().items()}, out / f"rank{dist.rank}.pt")
    shutdown(dist)


def regulariser_gradient(out: Path) -> None:
    from jooci.losses.dino import rdino_regulariser
    from jooci.train.distributed import all_gather_rows

    info = init_distributed("cpu")
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 8)
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(5, 6, generator=g) for _ in range(2)]  # two global views of 5 utterances
    teacher = [torch.randn(5, 8, generator=g) for _ in range(2)]
    rows = slice(0, 5) if not info.distributed else (slice(0, 3) if info.rank == 0 else slice(3, 5))
    module = DDP(layer) if info.distributed else layer
    student = [module(v[rows]) for v in views]
    reg = rdino_regulariser(student, [t[rows] for t in teacher], cov_normalizer=32,
                            gather=(lambda t: all_gather_rows(t, info)) if info.distributed else None)
    reg.loss.backward()
    if info.is_main:
        torch.save({"loss": reg.loss.detach(), "weight": layer.weight.grad, "bias": layer.bias.grad}, out)
    shutdown(info)


def targets_stage(out: Path, corpus: Path, fail: bool) -> None:
    import jooci.targets.pipeline as T
    from jooci.targets.labels import LabelError
    from jooci.train.pipeline import make_stage_targets

    cfg = load_config(None, ["model.clusters.num_clusters=[10,20]", "run.dist_timeout=120"])
    info = init_distributed("cpu", timeout=cfg.run.dist_timeout)
    if fail and info.rank == 1:
        def broken(utts, source, feat_dir, nshard, rank, **kwargs):
            raise LabelError(corpus / "broken.wav", ["not a readable audio file"])

        T.dump_shard = broken
    try:
        make_stage_targets(cfg, corpus / "all.jsonl", out, info, progress=False)
    except Exception as e:
        (out / f"error{info.rank}.txt").write_text(f"{type(e).__name__}: {e}")
        raise
    finally:
        shutdown(info)


def late_rank(out: Path) -> None:
    import time

    import torch.distributed as dist

    info = init_distributed("cpu", timeout=2.0)
    if info.rank == 1:
        time.sleep(10)
    try:
        dist.barrier()
    except Exception as e:  # gloo's timeout: rank 0 gives up after 2 s instead of waiting
        if info.is_main:
            out.write_text(f"{type(e).__name__}: {e}")
        sys.exit(3)
    sys.exit(0)


if __name__ == "__main__":
    if sys.argv[1] == "step":
        one_step(Path(sys.argv[2]))
    elif sys.argv[1] == "targets":
        targets_stage(Path(sys.argv[2]), Path(sys.argv[3]), fail=sys.argv[4:] == ["fail"])
    elif sys.argv[1] == "timeout":
        late_rank(Path(sys.argv[2]))
    elif sys.argv[1] == "reg":
        regulariser_gradient(Path(sys.argv[2]))
    else:
        nan_run(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), through_graph=sys.argv[1] == "nan")

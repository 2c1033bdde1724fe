"""results.json as a run goes (written after each task, valid when a later task fails), and the
flow that trains heads on another device (exercised here on the CPU: no GPU in this suite)."""

from __future__ import annotations

import json

import pytest
import torch

import jooci.superb.runner as runner
import jooci.superb.tasks.common as common
from jooci.superb import evaluate
from jooci.superb.report import markdown

TASKS = ["sid", "er"]


def _without_seconds(tasks: dict) -> dict:
    return {t: {k: v for k, v in r.items() if k != "seconds"} for t, r in tasks.items()}


def test_results_json_holds_the_finished_tasks_when_a_later_one_fails(corpus, tmp_path, fast, monkeypatch):
    cfg = fast(cache_dir=str(tmp_path / "cache"), probes=())
    out = tmp_path / "out"
    real = runner.run_task
    seen: list[str] = []

    def failing(task, *a, **k):
        seen.append(task.name)
        if task.name == "er":
            # what a run finds on disk when its second task starts: the first task, marked incomplete
            partial = json.loads((out / "results.json").read_text())
            assert partial["complete"] is False and list(partial["tasks"]) == ["sid"]
            raise RuntimeError("the second task fails")
        return real(task, *a, **k)

    monkeypatch.setattr(runner, "run_task", failing)
    with pytest.raises(RuntimeError, match="second task"):
        evaluate("fbank", corpus, TASKS, out, cfg)
    assert seen == ["sid", "er"]
    partial = json.loads((out / "results.json").read_text())  # valid JSON after the failure
    assert partial["complete"] is False and partial["tasks_requested"] == TASKS
    assert list(partial["tasks"]) == ["sid"] and partial["model"]["kind"] == "fbank"
    assert 0 <= partial["tasks"]["sid"]["value"] <= 100
    assert "incomplete" in runner.summary_table(partial)
    md = markdown([partial])
    assert "Incomplete runs (results.json written before every task asked for had finished): fbank: sid of sid, er." in md
    assert "| fbank | fbank | fbank | fbank | - |" in md  # the upstream table: name, kind, its one state

    # the rerun continues: SID from OUT/tasks/sid.json, ER trained, results.json complete
    seen.clear()
    monkeypatch.setattr(runner, "run_task", lambda task, *a, **k: seen.append(task.name) or real(task, *a, **k))
    doc = evaluate("fbank", corpus, TASKS, out, cfg)
    assert seen == ["er"] and doc["timings"]["reused"] == ["sid"]
    assert doc["complete"] is True and list(doc["tasks"]) == TASKS
    assert doc["tasks"]["sid"] == partial["tasks"]["sid"]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(doc))
    assert "incomplete" not in runner.summary_table(doc)


def test_heads_through_the_device_wrapper_give_the_cpu_results(corpus, tmp_path, fast, monkeypatch):
    """Every kind of head (pooled SID, frame-level CTC PR, BiLSTM ASR, x-vector ASV with its
    am_softmax_loss) trained inside OnDevice, on the CPU, equals the bare head bit for bit: the
    wrapper changes where the arithmetic runs, nothing else."""
    tasks = ["pr", "asr", "sid", "asv"]
    cfg = fast(cache_dir=str(tmp_path / "cache"), probes=())
    bare = evaluate("fbank", corpus, tasks, tmp_path / "bare", cfg)
    wrapped_heads: list[str] = []
    real_wrapper = common.OnDevice

    def spy(head, device):
        wrapped_heads.append(type(head).__name__)
        return real_wrapper(head, device)

    monkeypatch.setattr(common, "needs_wrapper", lambda device: True)
    monkeypatch.setattr(common, "OnDevice", spy)
    wrapped = evaluate("fbank", corpus, tasks, tmp_path / "wrapped", cfg)
    assert {"CTCHead", "PooledLinear", "XVectorHead"} <= set(wrapped_heads)
    assert _without_seconds(wrapped["tasks"]) == _without_seconds(bare["tasks"])


def test_on_device_moves_arguments_and_results():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.featurizer = torch.nn.Linear(2, 2)

        def forward(self, x, lengths):
            return self.featurizer(x) * lengths[:, None].float(), lengths

        def score(self, batch: common.FrameBatch):
            return batch.x.sum() + batch.lengths.sum()

    torch.manual_seed(0)
    head, x, n = Head(), torch.randn(3, 2, requires_grad=True), torch.tensor([1, 2, 3])
    wrapped = common.OnDevice(head, "cpu")
    (y, m), (y0, m0) = wrapped(x, n), head(x, n)
    assert torch.equal(y, y0) and torch.equal(m, m0) and y.device.type == "cpu"
    y.sum().backward()
    assert x.grad is not None and head.featurizer.weight.grad is not None  # gradients reach the head
    assert wrapped.featurizer is head.featurizer  # submodules are the head's
    assert float(wrapped.score(common.FrameBatch(torch.ones(2, 2), n, [0, 1]))) == 10.0
    assert set(wrapped.state_dict()) == {"head.featurizer.weight", "head.featurizer.bias"}


def test_heads_go_to_cuda_devices_only_and_the_key_says_so(corpus, fast):
    from jooci.superb.data import DataFolder, task_splits

    assert runner.head_device(fast(device="cuda:1")) == "cuda:1"
    assert runner.head_device(fast(device="cpu")) == "cpu" == runner.head_device(fast(device="meta"))
    assert common.needs_wrapper("cuda") and not common.needs_wrapper("cpu")
    sp = task_splits("sid", DataFolder(corpus))
    keys = {d: runner._task_key("sid", sp, fast(device=d), "fp", [0]) for d in ("cpu", "meta", "cuda", "cuda:0")}
    assert keys["cpu"] == keys["meta"]  # heads on the CPU either way: the key of earlier runs
    assert keys["cuda"] != keys["cpu"] and keys["cuda:0"] != keys["cpu"]

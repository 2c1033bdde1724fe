"""`jooci evaluate` killed with SIGKILL mid-way keeps the tasks it finished: their results are on
disk (OUT/tasks/TASK.json), and running the same command again trains only what is left, ending
with the results of an uninterrupted run.

The child (tests/superb/eval_kill_worker.py) runs the real CLI, finishes PR, and waits at the
start of SID; the test kills it there. Heads are seeded and run on one thread (the CLI default),
so the rerun's results equal the uninterrupted run's exactly (apart from the seconds taken).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import jooci.superb.probe as probe
import jooci.superb.runner as runner
from jooci.cli import main
from processes import kill_when_ready

WORKER = Path(__file__).with_name("eval_kill_worker.py")


def _args(corpus, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["evaluate", "--model", "fbank", "--data", str(corpus), "--tasks", "pr,sid", "--out", str(out),
            "--cache", str(cache), "--epochs", "pr=2", "sid=2", "--lr", "pr=1e-2", "sid=1e-2", "--no-progress", *extra]


def _kill_after_first_task(args: list[str], tmp_path: Path) -> str:
    return kill_when_ready([sys.executable, str(WORKER), str(tmp_path / "ready"), "--", *args], tmp_path / "ready",
                           tmp_path / "child.log", "its second task")


def _without_seconds(tasks: dict) -> dict:
    return {t: {k: v for k, v in r.items() if k != "seconds"} for t, r in tasks.items()}


@pytest.fixture
def spies(monkeypatch):
    """The tasks trained and the PR probes run in this process, in order."""
    calls = {"trained": [], "probed": []}
    real_run, real_probe = runner.run_task, probe.probe_pr
    monkeypatch.setattr(runner, "run_task",
                        lambda task, *a, **k: calls["trained"].append(task.name) or real_run(task, *a, **k))
    monkeypatch.setattr(probe, "probe_pr", lambda *a, **k: calls["probed"].append("pr") or real_probe(*a, **k))
    return calls


@pytest.fixture
def resumed(corpus, tmp_path, spies):
    """An evaluation of PR and SID killed at the start of SID, then run again with the same command."""
    cache, out = tmp_path / "cache", tmp_path / "killed"
    assert _kill_after_first_task(_args(corpus, out, cache), tmp_path) == "sid"
    assert not (out / "tasks" / "sid.json").exists()
    partial = json.loads((out / "results.json").read_text())  # rewritten after each task: PR only, incomplete
    assert partial["complete"] is False and "sid" not in partial["tasks"]
    kept = json.loads((out / "tasks" / "pr.json").read_text())["result"]
    assert main(_args(corpus, out, cache)) == 0
    return {"out": out, "cache": cache, "kept": kept, "doc": json.loads((out / "results.json").read_text())}


def test_evaluation_killed_mid_way_keeps_the_finished_tasks(corpus, resumed, spies):
    out, doc = resumed["out"], resumed["doc"]
    assert spies["trained"] == ["sid"]  # PR, finished before the kill, was not trained again
    assert doc["timings"]["reused"] == ["pr"] and doc["tasks"]["pr"] == resumed["kept"]
    assert set(doc["tasks"]) == {"pr", "sid"} and set(doc["probes"]) == {"pr", "sid"}

    # once more: every task and probe comes from the saved results
    spies["trained"].clear(), spies["probed"].clear()
    assert main(_args(corpus, out, resumed["cache"])) == 0
    assert spies["trained"] == [] and spies["probed"] == []
    again = json.loads((out / "results.json").read_text())
    assert again["timings"]["reused"] == ["pr", "sid", "probe-pr", "probe-sid"]
    assert again["tasks"] == doc["tasks"] and again["probes"] == doc["probes"]


@pytest.mark.slow
@pytest.mark.reliability
def test_a_resumed_evaluation_equals_an_uninterrupted_one(corpus, resumed, spies, tmp_path):
    assert main(_args(corpus, tmp_path / "straight", resumed["cache"])) == 0
    straight = json.loads((tmp_path / "straight" / "results.json").read_text())
    doc = resumed["doc"]
    assert _without_seconds(doc["tasks"]) == _without_seconds(straight["tasks"])
    assert doc["probes"] == straight["probes"]
    # a changed setting trains every task anew
    spies["trained"].clear()
    assert main(_args(corpus, resumed["out"], resumed["cache"], "--seed", "1")) == 0
    assert spies["trained"] == ["pr", "sid"]

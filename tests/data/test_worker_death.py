"""A DataLoader worker that dies (SIGKILL, as the out-of-memory killer sends; or an exit without a
Python exception, as a crash in a decoder) is reported with the file it was reading.

The worker really dies: ``load_audio`` is replaced, in this process, by one that kills the process
calling it on one file; the DataLoader's forked workers inherit the replacement. (Under a start
method other than fork the workers would import the real one, so those tests are skipped there.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import numpy as np
import pytest
import soundfile as sf

import jooci.data.dataset as D
from jooci.data.dataset import WorkerDiedError, explain_worker_death, make_loader
from jooci.data.manifest import Utterance


fork_only = pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                               reason="the poisoned load_audio reaches the workers by fork only")


@pytest.fixture
def files(tmp_path):
    """Eight 1-s files; shuffle=False with a 2-s budget makes batches [0, 1], [2, 3], ..."""
    utts = []
    for i in range(8):
        path = tmp_path / f"utt{i}.wav"
        sf.write(str(path), np.full(16000, 0.01 * (i + 1), dtype=np.float32), 16000, subtype="FLOAT")
        utts.append(Utterance(id=f"utt{i}", path=str(path), num_samples=16000))
    return utts


def _poison(monkeypatch, path: str, how: str) -> None:
    real = D.load_audio

    def load(p, *a, **k):
        if p == path and os.getpid() != main:  # only a worker dies; the main process reads normally
            if how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        return real(p, *a, **k)

    main = os.getpid()
    monkeypatch.setattr(D, "load_audio", load)


def _read(loader) -> tuple[BaseException, list[str]]:
    """Read ``loader`` to its end as a training loop would; the error that ends it, the ids read.

    torch's SIGCHLD handler can raise its own error in the loop body, outside the loader (a worker
    dies while the main process is busy elsewhere); the CLI explains that one with
    explain_worker_death, and so does this.
    """
    seen = []
    it = iter(loader)
    try:
        for batch in it:
            seen += batch.ids
    except WorkerDiedError as e:
        return e, seen
    except RuntimeError as e:
        if it._it is not None:
            it._it._shutdown_workers()  # else torch's handler raises again at the next exiting child
        return explain_worker_death(e) or e, seen
    raise AssertionError(f"the loader ended without an error after {seen}")


def _loader(utts, workers: int):
    return make_loader(utts, max_seconds=2, min_samples=8000, max_samples=None, shuffle=False,
                       num_workers=workers, pin_memory=False)[0]


@fork_only
@pytest.mark.parametrize("how,reason", [("sigkill", "killed by SIGKILL, most likely by the out-of-memory killer"),
                                         ("exit", "exited with status 3 without raising an error")])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_dead_worker_is_reported_with_the_file_it_was_reading(files, monkeypatch, how, reason, workers):
    bad = files[5]
    _poison(monkeypatch, bad.path, how)
    e, seen = _read(_loader(files, workers))
    assert isinstance(e, WorkerDiedError), e
    assert e.path == bad.path and e.utterance == "utt5"
    assert f"died while reading {bad.path} (utterance 'utt5')" in str(e) and reason in str(e)
    assert "\n" not in str(e)
    assert "utt5" not in seen and set(seen) <= {"utt0", "utt1", "utt2", "utt3"}  # batches before [4, 5]


@fork_only
def test_a_worker_dying_while_the_main_process_computes_is_explained_too(files, monkeypatch):
    """torch's SIGCHLD handler raises its error wherever the main process is (in the model's
    forward, in training); explain_worker_death turns that error into the same report."""
    bad = files[4]  # batch 3 of 4; the worker fetches it once the main process takes batch 1
    _poison(monkeypatch, bad.path, "sigkill")
    it = iter(_loader(files, 1))
    assert next(it).ids == ["utt0", "utt1"]
    with pytest.raises(RuntimeError) as info:
        for _ in range(600):  # "computing" until torch's handler raises here, not in next()
            time.sleep(0.05)
    assert not isinstance(info.value, WorkerDiedError), "raised by torch, outside the loader"
    e = explain_worker_death(info.value)
    it._it._shutdown_workers()  # else torch's handler raises again at the next exiting child
    assert isinstance(e, WorkerDiedError) and e.path == bad.path and "killed by SIGKILL" in str(e)


def test_explain_leaves_other_errors_alone():
    assert explain_worker_death(RuntimeError("CUDA out of memory")) is None
    assert explain_worker_death(ValueError("DataLoader worker (pid 1) exited unexpectedly")) is None
    # a pid no tracked loader ever saw: still one line, with torch's reason
    e = explain_worker_death(RuntimeError("DataLoader worker (pid 999999) is killed by signal: Killed. "))
    assert isinstance(e, WorkerDiedError) and e.path is None and "before reading any file" in str(e)


def test_without_workers_the_loader_is_a_plain_dataloader(files):
    loader = _loader(files, 0)
    assert loader.dataset.tracker is None and len(list(loader)) == 4

"""jooci.progress: plain log lines instead of a bar when stderr is not a terminal, and the
commands' --no-progress."""

import logging

import pytest
from tqdm import tqdm

import jooci.progress as P
from jooci.cli import main


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "jooci.progress"]


def test_a_line_every_interval_and_one_at_the_end(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="jooci.progress")
    bar = P.PlainProgress(total=100, desc="extract", unit="utt", interval=30, clock=clock)
    for _ in range(10):
        clock.t += 10
        bar.update(10)
    bar.set_postfix(skipped=2)
    bar.close()
    bar.close()  # once only
    lines = _lines(caplog)
    assert lines[:3] == ["extract: 30/100 utt (30 %) | 1 utt/s | ETA 0:01:10",
                         "extract: 60/100 utt (60 %) | 1 utt/s | ETA 0:00:40",
                         "extract: 90/100 utt (90 %) | 1 utt/s | ETA 0:00:10"]
    assert lines[3] == "extract: 100/100 utt (100 %) | 1 utt/s | took 0:01:40 | skipped 2"
    assert len(lines) == 4


def test_iterating_counts_and_closes(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="jooci.progress")
    seen = []
    for x in P.PlainProgress(range(5), desc="headers", unit="file", interval=1e9, clock=clock):
        clock.t += 2
        seen.append(x)
    assert seen == list(range(5))
    assert _lines(caplog) == ["headers: 5/5 file (100 %) | 0.5 file/s | took 0:00:10"]


def test_without_a_total_and_with_fractions(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="jooci.progress")
    bar = P.PlainProgress(desc="synth", unit="s", interval=5, clock=clock)
    clock.t = 5
    bar.update(2.5)
    assert _lines(caplog) == ["synth: 2.5 s | 0.5 s/s"]


def test_terminal_gets_tqdm_a_log_file_plain_lines_and_off_is_off(monkeypatch):
    monkeypatch.setattr(P, "is_terminal", lambda: True)
    bar = P.progress(total=3, desc="x")
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()
    monkeypatch.setattr(P, "is_terminal", lambda: False)
    assert isinstance(P.progress(total=3, desc="x"), P.PlainProgress)
    off = P.progress(total=3, desc="x", enabled=False)
    assert isinstance(off, tqdm) and off.disable


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("JOOCI_PROGRESS_SECONDS", "2.5")
    assert P.PlainProgress(total=1).interval == 2.5
    monkeypatch.setenv("JOOCI_PROGRESS_SECONDS", "soon")
    with pytest.raises(ValueError, match="JOOCI_PROGRESS_SECONDS"):
        P.PlainProgress(total=1)


@pytest.mark.parametrize("no_progress", [False, True])
def test_synth_and_prepare_log_plain_lines_unless_no_progress(tmp_path, caplog, monkeypatch, no_progress):
    monkeypatch.setattr(P, "is_terminal", lambda: False)
    monkeypatch.setenv("JOOCI_PROGRESS_SECONDS", "1e9")  # only the closing line
    caplog.set_level(logging.INFO)
    flag = ["--no-progress"] if no_progress else []
    out = tmp_path / "libri"
    assert main(["synth", "--out", str(out), "--minutes", "0.3", "--speakers", "8", "--workers", "1",
                 "--layout", "librispeech", *flag]) == 0
    assert main(["prepare", "librispeech", "--root", str(out), "--out", str(tmp_path / "m"), *flag]) == 0
    lines = _lines(caplog)
    if no_progress:
        assert lines == []
    else:
        assert any(line.startswith("JOOCI-synth (audio seconds): ") and "took" in line for line in lines)
        assert any(line.startswith("LibriSpeech headers: ") and "file (100 %)" in line for line in lines)

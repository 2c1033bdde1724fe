"""Bad audio, manifests and label files through every command that reads them.

Each case is a small JOOCI-synth corpus with one file or record damaged (tests/badinputs.py crafts
them). A command fed one either exits with status 2 and exactly one stderr line,
``jooci CMD: error: ...``, naming the file (or the manifest and the record) and the problem, or
succeeds with the file skipped, logged and counted; never a traceback, never features from the
damaged file. Odd but valid audio (8/44.1/48 kHz, stereo 24-bit, FLAC named .wav) is accepted
everywhere. The commands run in-process through ``jooci.cli.main``.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from badinputs import BAD_AUDIO, BAD_REASON, ODD_AUDIO

from jooci.audio import audio_info
from jooci.cli import main
from jooci.data.manifest import Utterance, read_manifest

SPLITS = ("pretrain", "train", "dev", "test")
DAMAGED = ("pretrain", "test")  # the splits whose first record is damaged (pretraining; ASV and extraction)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from jooci.models import HuBERTBaseline

    d = tmp_path_factory.mktemp("model") / "m"
    HuBERTBaseline.from_preset("tiny").save_pretrained(d)
    return d


def corpus_variant(src: Path, dst: Path, mutate) -> Path:
    """A copy of the synth corpus's manifests (audio shared) with ``mutate(split, utts, dst)`` applied;
    ``mutate`` returns the records (or raw JSON lines) to write."""
    dst.mkdir(parents=True)
    shutil.copy(src / "trials.txt", dst / "trials.txt")
    for split in SPLITS:
        utts = mutate(split, read_manifest(src / f"{split}.jsonl", check_durations=False), dst)
        (dst / f"{split}.jsonl").write_text("".join(u if isinstance(u, str) else u.to_json() + "\n" for u in utts))
    return dst


def replace_audio(make, splits=DAMAGED):
    """A mutation: the first record of each of ``splits`` points at a file ``make`` writes (its
    header's length and rate where the header can be read)."""

    def mutate(split, utts, d):
        if split in splits:
            path = make(d / f"bad_{split}")
            try:
                info = audio_info(path)
                n, rate = info.num_samples, info.sample_rate
            except Exception:
                n, rate = utts[0].num_samples, 16000
            utts[0] = Utterance(**{**utts[0].__dict__, "path": str(path), "num_samples": n, "sample_rate": rate})
        return utts

    return mutate


def argv_for(command: str, data: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return {
        "extract": ["extract", "--model", str(model), "--manifest", str(data / "test.jsonl"), "--out", str(out),
                    "--layers", "0", "--no-progress"],
        "targets": ["targets", "--manifest", str(data / "test.jsonl"), "--out", str(out), "--k", "2",
                    "--fraction", "1", "--backend", "sklearn", "--no-progress"],
        "verify": ["verify", "--model", "fbank", "--data", str(data)],
        "evaluate": ["evaluate", "--model", "fbank", "--data", str(data), "--tasks", "asv", "--epochs", "asv=1",
                     "--no-probes", "--out", str(out), "--no-progress"],
        "pretrain": ["pretrain", "--config", "tiny", "--phase", "teacher", "--manifest", str(data / "pretrain.jsonl"),
                     "--out", str(out), "schedule.teacher.steps=1", "data.min_seconds=0.5"],
    }[command] + list(extra)


PROGRESS_BAR = re.compile(r"\d+%\|.*\| \d+/\d+ \[")


def run(capsys, argv: list[str]) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr lines); progress bars (tqdm's lines and carriage-return
    frames) are dropped, and must not share a line with anything else."""
    code = main(argv)
    cap = capsys.readouterr()
    lines = []
    for line in cap.err.splitlines():
        frames = [f for f in line.split("\r") if f.strip()]
        others = [f for f in frames if not PROGRESS_BAR.search(f)]
        assert len(others) == len(frames) or not others, f"a progress bar and a message on one line: {line!r}"
        lines += others
    return code, cap.out, lines


def quiet(err: list[str]) -> bool:
    """No error line and no traceback on stderr (progress bars are allowed)."""
    return not any("error" in line.lower() or "Traceback" in line for line in err)


def assert_one_line_error(code: int, err: list[str], command: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"jooci {command}: error: "), err
    for needle in needles:
        assert re.search(needle, err[0]), (needle, err[0])


COMMANDS = ("extract", "targets", "verify", "evaluate", "pretrain")


# --- bad audio: refused, naming the file, by every command that decodes it ---------------------

# pretrain's length filter (data.min_seconds) drops these before they are decoded: logged, counted
DROPPED_BY_PRETRAIN = {"header_only", "one_sample"}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_bad_audio_is_one_line_naming_the_file(case, command, synth_corpus, model_dir, tmp_path, capsys, caplog):
    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(BAD_AUDIO[case]))
    split = "pretrain" if command == "pretrain" else "test"
    bad = str(data / f"bad_{split}")
    caplog.set_level(logging.WARNING)
    code, out, err = run(capsys, argv_for(command, data, tmp_path / "out", model_dir))
    if command == "pretrain" and case in DROPPED_BY_PRETRAIN:
        assert code == 0 and quiet(err)
        bad_id = read_manifest(data / "pretrain.jsonl", check_durations=False)[0].id
        assert any("dropped 1 of" in r.getMessage() and bad_id in r.getMessage() for r in caplog.records)
        return
    assert_one_line_error(code, err, command, re.escape(bad), BAD_REASON[case])


# Bad files whose header reads: pretrain meets them only when its loader reads the samples (the
# others are refused, all listed at once, by the manifest check before the first step).
FOUND_BY_THE_LOADER = ("inf", "nan")


@pytest.mark.parametrize("case", FOUND_BY_THE_LOADER)
def test_pretrain_skips_bad_audio_under_its_limit(case, synth_corpus, model_dir, tmp_path, capsys, caplog):
    """Under data.max_bad_files the file is skipped, logged once with its reason (though drawn in
    several epochs) and counted; the run finishes. With the default limit 0 the same file stops the
    run with one line (test_bad_audio_is_one_line_naming_the_file)."""
    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(BAD_AUDIO[case]))
    caplog.set_level(logging.WARNING)
    code, out, err = run(capsys, argv_for("pretrain", data, tmp_path / "out", model_dir, "data.max_bad_files=1",
                                          "schedule.teacher.steps=3"))
    assert code == 0 and quiet(err), err
    bad = str(data / "bad_pretrain")
    skips = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(skips) == 1 and "[1 of at most 1 bad files skipped]" in skips[0], skips
    assert re.search(BAD_REASON[case], skips[0]), skips[0]


@pytest.mark.parametrize("case", FOUND_BY_THE_LOADER)
def test_evaluate_skips_bad_audio_under_its_limit(case, synth_corpus, model_dir, tmp_path, capsys, caplog):
    """Under --max-skipped the file's utterance is skipped, logged with its reason and left out of
    the task (logged too); with the default limit (5 %) the same file stops the run with one line
    (test_bad_audio_is_one_line_naming_the_file)."""
    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(BAD_AUDIO[case]))
    caplog.set_level(logging.WARNING)
    code, out, err = run(capsys, argv_for("evaluate", data, tmp_path / "out", model_dir, "--max-skipped", "0.5"))
    assert code == 0 and quiet(err), err
    bad = str(data / "bad_test")
    skips = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(skips) == 1 and re.search(BAD_REASON[case], skips[0]), skips
    left_out = [r.getMessage() for r in caplog.records if "utterance(s) left out" in r.getMessage()]
    assert left_out == ["asv: 1 test utterance(s) left out (unreadable audio, see the cache index.json)"], left_out


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_extract_skips_bad_audio_under_its_limit(case, synth_corpus, model_dir, tmp_path, capsys, caplog):
    """Under --max-skipped the file is skipped, logged with its reason, counted in the summary line
    and in index.json; the shards hold every other utterance and not that one."""
    import json

    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(BAD_AUDIO[case]))
    caplog.set_level(logging.WARNING)
    code, out, err = run(capsys, argv_for("extract", data, tmp_path / "out", model_dir, "--max-skipped", "0.2"))
    assert code == 0 and quiet(err) and "1 file(s) skipped" in out
    bad = str(data / "bad_test")
    assert sum(bad in r.getMessage() for r in caplog.records) == 1
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    utts = read_manifest(data / "test.jsonl", check_files=False, check_durations=False)
    assert [s["id"] for s in index["skipped"]] == [utts[0].id]
    assert re.search(BAD_REASON[case], index["skipped"][0]["reason"])
    ids = (tmp_path / "out" / "shard_00000.ids").read_text().split()
    assert ids == [u.id for u in utts[1:]]


# --- odd but valid audio: accepted everywhere ---------------------------------------------------


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "pretrain"])
@pytest.mark.parametrize("case", sorted(ODD_AUDIO))
def test_odd_audio_is_accepted(case, command, synth_corpus, model_dir, tmp_path, capsys):
    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(ODD_AUDIO[case]))
    code, out, err = run(capsys, argv_for(command, data, tmp_path / "out", model_dir, *(
        ["--max-skipped", "0"] if command == "extract" else [])))
    assert code == 0 and quiet(err), err


RELIABILITY = [pytest.mark.slow, pytest.mark.reliability]


@pytest.mark.parametrize("case", [pytest.param(c, marks=[] if c == "stereo_24bit_44k1" else RELIABILITY)
                                  for c in sorted(ODD_AUDIO)])
def test_odd_audio_pretrains(case, synth_corpus, model_dir, tmp_path, capsys):
    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(ODD_AUDIO[case]))
    code, out, err = run(capsys, argv_for("pretrain", data, tmp_path / "out", model_dir))
    assert code == 0 and "model:" in out, err


def test_extracted_odd_audio_is_the_16k_mono_signal(synth_corpus, model_dir, tmp_path, capsys):
    """A stereo 24-bit 44.1 kHz file's features are those of its 16 kHz channel mean, not of the raw
    samples read at the wrong rate."""
    import torch

    from jooci import hub
    from jooci.audio import load_audio
    from jooci.store import open_store

    data = corpus_variant(synth_corpus, tmp_path / "data", replace_audio(ODD_AUDIO["stereo_24bit_44k1"]))
    code, out, err = run(capsys, argv_for("extract", data, tmp_path / "out", model_dir, "--dtype", "float32"))
    assert code == 0
    stereo, rate = sf.read(data / "bad_test.wav", dtype="float32", always_2d=True)
    assert stereo.shape[1] == 2 and rate == 44100
    from jooci.audio import resample

    expected_wav = resample(stereo.mean(axis=1), 44100, 16000)
    np.testing.assert_allclose(load_audio(data / "bad_test.wav"), expected_wav, atol=1e-6)
    with torch.inference_mode():
        want = hub.load(model_dir).eval().extract_features(torch.from_numpy(expected_wav)[None]).hidden_states[0][0]
    got = open_store(tmp_path / "out").shards[0].utterance(0, 0)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)


# --- manifests ----------------------------------------------------------------------------------


def _missing(split, utts, d):
    if split in DAMAGED:
        utts[0].path = str(d / "gone.wav")
    return utts


def _duplicate(split, utts, d):
    if split in DAMAGED:
        utts[1].id = utts[0].id
    return utts


def _wrong_duration(split, utts, d):
    if split in DAMAGED:
        utts[0].num_samples += 800
    return utts


MANIFEST_CASES = {"missing_file": _missing, "duplicate_id": _duplicate, "wrong_duration": _wrong_duration}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_bad_manifest_is_one_line_naming_it(case, command, synth_corpus, model_dir, tmp_path, capsys):
    data = corpus_variant(synth_corpus, tmp_path / "data", MANIFEST_CASES[case])
    split = "pretrain" if command == "pretrain" else "test"
    first = read_manifest(synth_corpus / f"{split}.jsonl", check_durations=False)[0]
    code, out, err = run(capsys, argv_for(command, data, tmp_path / "out", model_dir))
    if case == "duplicate_id":  # the manifest, the line and the id
        assert_one_line_error(code, err, command, re.escape(str(data / f"{split}.jsonl")), "line 2: duplicate id",
                              re.escape(first.id))
    elif case == "missing_file":
        assert_one_line_error(code, err, command, re.escape(str(data / "gone.wav")), "not found")
    else:  # the file, both lengths (extract: a skip, past its 5 % here)
        assert_one_line_error(code, err, command, re.escape(first.path), str(first.num_samples + 800),
                              str(first.num_samples) if command != "extract" else "16000 Hz")


@pytest.mark.parametrize("case", ["missing_file", "wrong_duration"])
def test_extract_skips_a_bad_record_under_its_limit(case, synth_corpus, model_dir, tmp_path, capsys):
    data = corpus_variant(synth_corpus, tmp_path / "data", MANIFEST_CASES[case])
    code, out, err = run(capsys, argv_for("extract", data, tmp_path / "out", model_dir, "--max-skipped", "0.2"))
    assert code == 0 and quiet(err) and "1 file(s) skipped" in out


def _unknown_fields(split, utts, d):
    for u in utts:
        u.custom = {"meta": {"corpus": "mine", "snr": 12.5}, "phone_alignment": [["AH", 0, 320]]}
    return utts


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_fields_are_kept_and_reported_once(command, synth_corpus, model_dir, tmp_path, capsys, caplog):
    data = corpus_variant(synth_corpus, tmp_path / "data", _unknown_fields)
    caplog.set_level(logging.INFO)
    code, out, err = run(capsys, argv_for(command, data, tmp_path / "out", model_dir))
    assert code == 0 and quiet(err), err
    reports = [r.getMessage() for r in caplog.records if "does not read (meta, phone_alignment)" in r.getMessage()]
    assert reports, "the unknown fields were not reported"
    per_manifest = [m.split(":")[0] for m in reports]
    assert len(per_manifest) == len(set(per_manifest)), reports  # once per manifest read
    assert all(str(data) in m for m in reports)


def test_unknown_fields_are_carried_into_the_pretraining_manifest(synth_corpus, tmp_path, capsys):
    """`jooci pretrain --all` writes the union of its manifests into the run folder: the corpus's own
    fields are there, as they came."""
    import json

    from jooci.train.config import load_config, preset_path
    from jooci.train.loop import pretraining_manifest
    from jooci.train.distributed import DistInfo

    data = corpus_variant(synth_corpus, tmp_path / "data", _unknown_fields)
    cfg = load_config(preset_path("tiny"), [f"data.corpus={data}"])
    (tmp_path / "run").mkdir()
    utts = pretraining_manifest(cfg, tmp_path / "run", DistInfo())
    assert utts and all(u.custom["meta"] == {"corpus": "mine", "snr": 12.5} for u in utts)
    first = json.loads((tmp_path / "run" / "manifest.jsonl").read_text().splitlines()[0])
    assert first["phone_alignment"] == [["AH", 0, 320]] and "custom" not in first


# --- label files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def targets_dir(synth_corpus, tmp_path_factory):
    """`jooci targets` for the pretraining split at the tiny preset's K (10, 20)."""
    out = tmp_path_factory.mktemp("targets") / "t"
    assert main(["targets", "--manifest", str(synth_corpus / "pretrain.jsonl"), "--out", str(out), "--k", "10,20",
                 "--fraction", "1", "--backend", "sklearn", "--no-progress"]) == 0
    return out


def _edit_labels(src: Path, dst: Path, shift: int) -> tuple[Path, int]:
    """A copy of the targets folder whose k10.km line 2 is ``shift`` frames short (or long)."""
    shutil.copytree(src, dst)
    lines = (dst / "k10.km").read_text().splitlines()
    row = lines[1].split()
    lines[1] = " ".join(row[:shift] if shift < 0 else row + row[:shift])
    (dst / "k10.km").write_text("\n".join(lines) + "\n")
    return dst / "k10.km", len(row)


@pytest.mark.parametrize("shift", [-1, 1, -25, 40], ids=["one_short", "one_long", "many_short", "many_long"])
@pytest.mark.parametrize("command", ["pretrain", "targets"])
def test_a_label_file_off_by_frames_is_one_line_naming_it(command, shift, synth_corpus, targets_dir, tmp_path,
                                                          capsys):
    labels, n = _edit_labels(targets_dir, tmp_path / "t", shift)
    second = read_manifest(synth_corpus / "pretrain.jsonl", check_durations=False)[1]
    if command == "pretrain":
        argv = ["pretrain", "--config", "tiny", "--phase", "content", "--manifest", str(synth_corpus / "pretrain.jsonl"),
                "--labels", str(tmp_path / "t"), "--out", str(tmp_path / "run"), "schedule.content.steps=1"]
    else:
        argv = ["targets", "--quality", "--manifest", str(synth_corpus / "pretrain.jsonl"), "--labels", str(tmp_path / "t")]
    code, out, err = run(capsys, argv)
    assert_one_line_error(code, err, command, re.escape(str(labels)), re.escape(second.id),
                          f"expected {n} frames at 50 Hz, found {n + shift}")


# --- jooci prepare: a LibriSpeech tree with one damaged file ------------------------------------


def librispeech_tree(root: Path, bad=None, n: int = 4) -> Path:
    """``root/LibriSpeech/dev-clean/19/198``: ``n`` good FLAC files, and one more written by ``bad``."""
    chapter = root / "LibriSpeech" / "dev-clean" / "19" / "198"
    chapter.mkdir(parents=True)
    lines = []
    rng = np.random.default_rng(0)
    for i in range(n + (bad is not None)):
        uid = f"19-198-{i:04d}"
        if i == n:
            made = bad(chapter / f"tmp-{uid}")
            made.rename(chapter / f"{uid}.flac")
        else:
            sf.write(chapter / f"{uid}.flac", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        lines.append(f"{uid} HELLO WORLD {i}")
    (chapter / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    return root


# prepare reads headers only: damage inside the samples passes, to be refused by whatever decodes it
PREPARE_PASSES = {"nan", "inf"}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_prepare_names_a_bad_file_or_skips_it_under_the_limit(case, tmp_path, capsys, caplog):
    root = librispeech_tree(tmp_path / "corpus", BAD_AUDIO[case])
    bad = root / "LibriSpeech" / "dev-clean" / "19" / "198" / "19-198-0004.flac"
    argv = ["prepare", "librispeech", "--root", str(root), "--out", str(tmp_path / "m")]
    code, out, err = run(capsys, argv)
    if case in PREPARE_PASSES:
        assert code == 0 and "(5 utterances)" in out
        return
    assert_one_line_error(code, err, "prepare", "19-198-0004", "1 of 5 utterances skipped")
    if case != "header_only":  # the empty-audio skip names the id and the path
        assert re.search(re.escape(str(bad)), err[0])
    caplog.clear()
    caplog.set_level(logging.WARNING)
    code, out, err = run(capsys, argv + ["--max-skip-fraction", "0.25"])
    assert code == 0 and quiet(err) and "(4 utterances)" in out
    assert sum("19-198-0004" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("case", sorted(ODD_AUDIO))
def test_prepare_accepts_odd_audio(case, tmp_path, capsys):
    root = librispeech_tree(tmp_path / "corpus", ODD_AUDIO[case])
    code, out, err = run(capsys, ["prepare", "librispeech", "--root", str(root), "--out", str(tmp_path / "m")])
    assert code == 0 and quiet(err) and "(5 utterances)" in out
    odd = [u for u in read_manifest(tmp_path / "m" / "dev-clean.jsonl") if u.id == "19-198-0004"][0]
    assert odd.sample_rate == audio_info(odd.path).sample_rate


def test_the_parser_defaults_agree_with_the_library():
    from jooci.cli.extract import add_arguments
    import argparse

    from jooci.extract import CHUNK_SECONDS, CONTEXT_SECONDS

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--model", "m", "--manifest", "x", "--out", "o"])
    assert (args.chunk_seconds, args.context_seconds) == (CHUNK_SECONDS, CONTEXT_SECONDS)

    from jooci.cli import evaluate
    from jooci.superb.runner import EvalConfig

    p = argparse.ArgumentParser()
    evaluate.add_arguments(p)
    args = p.parse_args(["--model", "m", "--data", "d", "--out", "o"])
    assert args.max_skipped == EvalConfig().max_skipped

"""jooci.data.manifest: JSONL round trip, validation errors, fairseq TSV and label files."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jooci.data.manifest import (
    ManifestError, Utterance, read_fairseq_tsv, read_label_file, read_manifest, write_fairseq_tsv,
    write_label_file, write_manifest,
)


@pytest.fixture
def corpus(tmp_path):
    """Three 16 kHz files under tmp_path/audio and their records (absolute paths)."""
    utts = []
    for i, n in enumerate((1600, 3200, 4800)):
        p = tmp_path / "audio" / f"spk{i % 2}" / f"u{i}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.full(n, 0.01, np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", path=str(p), num_samples=n, speaker=f"spk{i % 2}",
                              phones=["AH", "B"], alignment=[("sil", 0, 100), ("AH", 100, 900), ("B", 900, n)]))
    return utts


def _err(fn, *args, **kw) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        fn(*args, **kw)
    return info.value


def test_round_trip_relative_paths(tmp_path, corpus):
    m = write_manifest(corpus, tmp_path / "m.jsonl")
    first = json.loads(m.read_text().splitlines()[0])
    assert first["path"] == "audio/spk0/u0.wav", "paths under the manifest folder are stored relative"
    assert "style" not in first, "unset optional fields are not written"
    back = read_manifest(m)
    assert back == corpus
    assert back[0].alignment[1] == ("AH", 100, 900)


def test_minimal_record_and_optional_fields(tmp_path, corpus):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "x", "path": corpus[0].path, "num_samples": 1600}) + "\n\n")
    (u,) = read_manifest(m)
    assert (u.speaker, u.sample_rate, u.split) == (None, 16000, None)


def test_duplicate_ids_missing_files_and_wrong_durations_in_one_error(tmp_path, corpus):
    recs = [json.loads(u.to_json()) for u in corpus]
    recs.append(dict(recs[0]))  # duplicate id u0
    recs.append({"id": "gone", "path": str(tmp_path / "missing.wav"), "num_samples": 10})
    recs[1]["num_samples"] += 7  # wrong duration
    m = tmp_path / "bad.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in recs))
    e = _err(read_manifest, m)
    msg = str(e)
    assert str(m) in msg and "3 problem(s)" in msg
    assert "duplicate id 'u0'" in msg
    assert "gone" in msg and "file not found" in msg and "missing.wav" in msg
    assert "u1: num_samples 3207 in the manifest, 3200 in" in msg


def test_duration_check_can_be_turned_off_and_tolerance(tmp_path, corpus):
    corpus[0].num_samples += 2
    m = write_manifest(corpus, tmp_path / "m.jsonl")
    assert len(read_manifest(m, check_durations=False)) == 3
    assert len(read_manifest(m, tolerance=2)) == 3
    assert "u0" in str(_err(read_manifest, m))


def test_wrong_sample_rate_reported(tmp_path, corpus):
    corpus[2].sample_rate = 8000
    e = _err(read_manifest, write_manifest(corpus, tmp_path / "m.jsonl"))
    assert "u2: sample_rate 8000 in the manifest, 16000 in" in str(e)


@pytest.mark.parametrize("line,problem", [
    ("{not json", "line 1:"),
    ('{"id": "a", "path": "a.wav"}', "missing field(s) num_samples"),
    ('{"id": "a", "path": "a.wav", "num_samples": -5}', "num_samples must be a non-negative integer"),
    ('{"id": "a", "path": "a.wav", "num_samples": 5, "alignment": [["AH", 9, 3]]}', "alignment segment"),
])
def test_malformed_lines_are_named(tmp_path, line, problem):
    m = tmp_path / "m.jsonl"
    m.write_text(line + "\n")
    e = _err(read_manifest, m, check_files=False, check_durations=False)
    assert str(m) in str(e) and problem in str(e)


def test_fields_jooci_does_not_read_are_kept_written_back_and_reported_once(tmp_path, corpus, caplog):
    m = write_manifest(corpus, tmp_path / "m.jsonl")
    lines = m.read_text().splitlines()
    first = {**json.loads(lines[0]), "meta": {"room": "B12", "mic": 3}, "phone_alignment": [["AH", 0, 3]]}
    second = {**json.loads(lines[1]), "custom": 3, "meta": "x"}  # a corpus's own "custom" is just another field
    m.write_text("\n".join([json.dumps(first), json.dumps(second), *lines[2:]]) + "\n")
    with caplog.at_level(logging.INFO, logger="jooci.data.manifest"):
        utts = read_manifest(m)
    assert utts[0].custom == {"meta": {"room": "B12", "mic": 3}, "phone_alignment": [["AH", 0, 3]]}
    assert utts[1].custom == {"custom": 3, "meta": "x"} and all(u.custom is None for u in utts[2:])
    said = [r.getMessage() for r in caplog.records if "jooci does not read" in r.getMessage()]
    assert len(said) == 1 and f"2 of {len(utts)} utterance(s)" in said[0] and "custom, meta, phone_alignment" in said[0]
    # carried through: written back at the top level of the record, and read again the same
    again = read_manifest(write_manifest(utts, tmp_path / "again.jsonl"))
    assert [u.custom for u in again] == [u.custom for u in utts]
    written = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()[:2]]
    assert written[0]["meta"] == {"room": "B12", "mic": 3} and written[1]["custom"] == 3  # as they came


def test_a_custom_field_may_not_shadow_a_field_of_jooci(corpus):
    corpus[0].custom = {"speaker": "other"}
    with pytest.raises(ValueError, match="shadow"):
        corpus[0].to_json()


def test_many_problems_listed_first_ten_and_counted(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": f"u{i}", "path": f"nope{i}.wav", "num_samples": 1}) + "\n"
                         for i in range(25)))
    e = _err(read_manifest, m)
    assert len(e.problems) == 25 and "25 problem(s)" in str(e) and "... and 15 more" in str(e)
    assert "u9:" in str(e) and "u10:" not in str(e)


def test_missing_manifest(tmp_path):
    e = _err(read_manifest, tmp_path / "none.jsonl")
    assert "none.jsonl" in str(e) and "not found" in str(e)


def test_fairseq_tsv_round_trip(tmp_path, corpus):
    tsv = write_fairseq_tsv(corpus, tmp_path / "train.tsv", root=tmp_path / "audio")
    lines = tsv.read_text().splitlines()
    assert lines[0] == str((tmp_path / "audio").resolve())
    assert lines[1] == "spk0/u0.wav\t1600"
    back = read_fairseq_tsv(tsv)
    assert [u.id for u in back] == ["spk0/u0", "spk1/u1", "spk0/u2"]
    assert [u.num_samples for u in back] == [1600, 3200, 4800]
    assert [u.path for u in back] == [str((tmp_path / "audio").resolve() / u.path.split("audio/")[1]) for u in corpus]


def test_fairseq_tsv_errors(tmp_path, corpus):
    outside = Utterance(id="x", path="/elsewhere/x.wav", num_samples=3)
    assert "not under the root" in str(_err(write_fairseq_tsv, [outside], tmp_path / "t.tsv", tmp_path))
    t = tmp_path / "bad.tsv"
    t.write_text(f"{tmp_path}\nmissing.wav\t100\nbroken line\n")
    e = str(_err(read_fairseq_tsv, t))
    assert "line 3: expected 'relpath<TAB>num_samples'" in e and "missing.wav" in e and "file not found" in e
    (tmp_path / "empty.tsv").write_text("")
    assert "empty file" in str(_err(read_fairseq_tsv, tmp_path / "empty.tsv"))


def test_label_files(tmp_path):
    rows = [[1, 2, 3], [0], [7, 7]]
    p = write_label_file(rows, tmp_path / "train.km")
    assert p.read_text() == "1 2 3\n0\n7 7\n"
    assert read_label_file(p) == rows
    p.write_text("1 2\n\n3 x\n-1\n")
    e = _err(read_label_file, p)
    assert str(p) in str(e)
    assert "line 2: no labels" in str(e) and "line 3: not a line of integers" in str(e) and "line 4: negative" in str(e)


def test_relative_paths_in_memory_are_from_the_cwd(tmp_path, corpus, monkeypatch):
    """jooci synth --out runs/demo/corpus gives CWD-relative paths: they must not be stored as if
    relative to the manifest's folder (that doubled the folder once)."""
    monkeypatch.chdir(tmp_path)
    rel = [Utterance(**{**u.__dict__, "path": str(Path(u.path).relative_to(tmp_path))}) for u in corpus]
    m = write_manifest(rel, "m.jsonl")
    assert json.loads(m.read_text().splitlines()[0])["path"] == "audio/spk0/u0.wav"
    assert [u.path for u in read_manifest(m)] == [u.path for u in corpus]
    outside = write_manifest(rel, Path("sub") / "m.jsonl")  # not under sub/: stored absolute
    assert json.loads(outside.read_text().splitlines()[0])["path"] == corpus[0].path

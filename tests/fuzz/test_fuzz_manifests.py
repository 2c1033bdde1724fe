"""Fuzz the text parsers of jooci.data: JSONL manifests, fairseq TSV manifests, label files, trial lists.

Each gets random bytes and random edits of a valid file built here (flipped, inserted and deleted
bytes, truncation, dropped/duplicated/swapped/joined lines, swapped fields, fields replaced by odd
tokens). It returns records, or raises a ManifestError (LabelError, CorpusError are ManifestErrors)
naming the file.
"""

import json

import numpy as np
import pytest
import soundfile as sf
from fuzzkit import expect_clean, fuzz, inputs, write
from hypothesis import given
from hypothesis import strategies as st

from jooci.data.corpora import read_trials
from jooci.data.manifest import (
    ManifestError, Utterance, read_fairseq_tsv, read_label_file, read_manifest, write_fairseq_tsv,
    write_label_file, write_manifest,
)
from jooci.targets.labels import expected_frames, read_labels

ERRORS = (ManifestError,)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three short WAV files and valid JSONL, TSV, label and trial files describing them."""
    root = tmp_path_factory.mktemp("fuzz_corpus")
    utts = []
    for i, n in enumerate((1600, 2400, 3200)):
        p = root / "audio" / f"u{i}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, np.full(n, 0.01, np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", path=str(p), num_samples=n, speaker=f"s{i % 2}", text="a b",
                              words=["a", "b"], phones=["AH", "B"],
                              alignment=[("sil", 0, 100), ("AH", 100, 800), ("B", 800, n)], split="train",
                              custom={"meta": {"snr": 12.5}}))
    files = {
        "jsonl": write_manifest(utts, root / "valid.jsonl"),
        "tsv": write_fairseq_tsv(utts, root / "valid.tsv", root / "audio"),
        "km": write_label_file([[k % 7 for k in range(expected_frames(u))] for u in utts], root / "valid.km"),
    }
    (root / "trials.txt").write_text("1 u0 u1\n0 u0 u2.wav\n1 audio/u1.flac u2\n")
    files["trials"] = root / "trials.txt"
    # the valid files parse: the fuzz starts from good input
    assert len(read_manifest(files["jsonl"])) == len(read_fairseq_tsv(files["tsv"])) == 3
    assert len(read_labels(files["km"], utts)) == 3 and len(read_trials(files["trials"])) == 3
    return root, utts, {k: v.read_bytes() for k, v in files.items()}


@fuzz(300)
@given(data=st.data())
def test_manifest(corpus, data):
    root, _, valid = corpus
    path = write(root / "fuzz.jsonl", data.draw(inputs(valid["jsonl"])))
    utts = expect_clean(lambda: read_manifest(path), path, ERRORS)
    for u in utts or []:
        assert isinstance(u.id, str) and u.id and isinstance(u.path, str)
        assert isinstance(u.num_samples, int) and u.num_samples >= 0
        assert isinstance(u.sample_rate, int) and u.sample_rate > 0
    expect_clean(lambda: read_manifest(path, check_files=False, check_durations=False), path, ERRORS)


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=6)
_KEYS = ["id", "path", "num_samples", "sample_rate", "speaker", "text", "words", "phones", "alignment",
         "split", "custom", "meta"]


@fuzz(200)
@given(changes=st.dictionaries(st.sampled_from(_KEYS), _ANY_JSON, min_size=1, max_size=3),
       dropped=st.sets(st.sampled_from(_KEYS), max_size=2))
def test_manifest_fields_of_any_json_type(corpus, changes, dropped):
    """A valid record with some fields set to a value of any JSON type, some removed."""
    root, _, valid = corpus
    record = json.loads(valid["jsonl"].splitlines()[0])
    record = {k: v for k, v in {**record, **changes}.items() if k not in dropped}
    path = write(root / "record.jsonl", (json.dumps(record) + "\n").encode())
    for kw in ({}, {"check_durations": False}, {"check_files": False, "check_durations": False}):
        expect_clean(lambda: read_manifest(path, **kw), path, ERRORS)


@fuzz(250)
@given(data=st.data())
def test_fairseq_tsv(corpus, data):
    root, _, valid = corpus
    path = write(root / "fuzz.tsv", data.draw(inputs(valid["tsv"])))
    utts = expect_clean(lambda: read_fairseq_tsv(path), path, ERRORS)
    for u in utts or []:
        assert isinstance(u.num_samples, int) and u.num_samples >= 0


@fuzz(250)
@given(data=st.data())
def test_label_file(corpus, data):
    root, utts, valid = corpus
    path = write(root / "fuzz.km", data.draw(inputs(valid["km"])))
    rows = expect_clean(lambda: read_label_file(path), path, ERRORS)
    assert rows is None or all(min(r) >= 0 for r in rows)
    expect_clean(lambda: read_labels(path, utts), path, ERRORS)
    rows = expect_clean(lambda: read_labels(path, utts, num_classes=7), path, ERRORS)
    if rows is not None:  # accepted: one row per utterance, of exactly its frame count
        assert [len(r) for r in rows] == [expected_frames(u) for u in utts]


@fuzz(250)
@given(data=st.data())
def test_trials(corpus, data):
    root, _, valid = corpus
    path = write(root / "fuzz_trials.txt", data.draw(inputs(valid["trials"])))
    trials = expect_clean(lambda: read_trials(path), path, ERRORS)
    for label, a, b in trials or []:
        assert label in (0, 1) and a and b

"""Atomic writes (jooci.fileio): the new content on success; on an exception mid-write the old
content, untouched; no temporary file or folder left behind either way."""

import json

import pytest

from jooci.fileio import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


class Boom(Exception):
    pass


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_helpers_write_the_exact_bytes(tmp_path):
    assert atomic_write_bytes(tmp_path / "b", b"\x00\x01") == tmp_path / "b"
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t", "é\n")
    assert (tmp_path / "t").read_bytes() == "é\n".encode("utf-8")
    atomic_write_json(tmp_path / "j", {"a": [1, 2]}, indent=1)
    assert (tmp_path / "j").read_text() == json.dumps({"a": [1, 2]}, indent=1) + "\n"
    atomic_write_text(tmp_path / "t", "again")  # replaces an existing file
    assert (tmp_path / "t").read_text() == "again"
    assert _names(tmp_path) == ["b", "j", "t"]


def test_atomic_path_keeps_the_old_file_on_an_exception(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_text("half of the new")
            raise Boom
    assert target.read_text() == "old" and _names(tmp_path) == ["f.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new" and _names(tmp_path) == ["f.txt"]


def test_atomic_dir_creates_and_replaces_a_folder(tmp_path):
    target = tmp_path / "sub" / "model"
    with atomic_dir(target) as tmp:
        assert tmp.is_dir() and not list(tmp.iterdir()) and tmp.parent == target.parent
        (tmp / "a").write_text("1")
        assert not target.exists()
    assert _names(target) == ["a"] and _names(tmp_path / "sub") == ["model"]
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        assert _names(target) == ["a"]  # the old folder stays whole until the block ends
    assert _names(target) == ["b"] and (target / "b").read_text() == "2"
    assert _names(tmp_path / "sub") == ["model"]  # no temporary or old folder left


def test_atomic_dir_keeps_the_old_folder_on_an_exception(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half of the new")
            raise Boom
    assert _names(target) == ["weights"] and (target / "weights").read_text() == "old"
    assert _names(tmp_path) == ["model"]
    with pytest.raises(Boom):  # and no folder appears where there was none
        with atomic_dir(tmp_path / "fresh") as tmp:
            raise Boom
    assert _names(tmp_path) == ["model"]


def test_atomic_dir_clears_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "model"
    stale = tmp_path / ".model.tmp"  # a writer killed mid-write left its temporary folder
    stale.mkdir()
    (stale / "junk").write_text("x")
    with atomic_dir(target) as tmp:
        assert not list(tmp.iterdir())  # the next write starts from an empty folder
        (tmp / "a").write_text("1")
    assert _names(tmp_path) == ["model"] and _names(target) == ["a"]

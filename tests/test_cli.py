"""The jooci command: subcommands are wired and errors reach the user as messages, not tracebacks."""

import pytest

from jooci.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_prepare_reports_a_missing_root(tmp_path, capsys):
    assert main(["prepare", "librispeech", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "error" in err and "nope" in err


def test_unknown_command_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fly"])


def test_extract_writes_shards(synth_corpus, tmp_path, capsys):
    from jooci.models import HuBERTBaseline

    HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path / "m")
    code = main(["extract", "--model", str(tmp_path / "m"), "--manifest", str(synth_corpus / "dev.jsonl"),
                 "--out", str(tmp_path / "feats"), "--layers", "0", "2", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "layers [0, 2]" in out and "0 file(s) skipped" in out
    assert any((tmp_path / "feats").iterdir())


def test_extract_names_a_bad_model_folder(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text("")
    assert main(["extract", "--model", str(tmp_path / "nomodel"), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "nomodel" in capsys.readouterr().err

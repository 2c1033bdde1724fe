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

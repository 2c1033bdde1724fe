"""The jooci command: subcommands are wired, help needs no torch, and errors reach the user as one
line on stderr with exit status 2, not tracebacks."""

import json
import subprocess
import sys

import pytest

from jooci.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


# Builds the parser, prints the help of the command named in argv (or the top level) and reports
# whether torch (or any other heavy package) was imported on the way.
_HELP_PROBE = """
import json, sys, time, contextlib, io
t0 = time.perf_counter()
from jooci.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(sys.argv[1:] + ["--help"])
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "numpy", "scipy", "sklearn", "matplotlib", "faiss") if m in sys.modules)
print(json.dumps({"seconds": time.perf_counter() - t0, "heavy": heavy, "chars": len(out.getvalue())}))
"""


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_no_torch(command):
    """`jooci --help` and `jooci COMMAND --help` in a fresh interpreter: no torch, no numpy."""
    argv = [] if command is None else [command]
    done = subprocess.run([sys.executable, "-c", _HELP_PROBE, *argv], capture_output=True, text=True, check=True)
    probe = json.loads(done.stdout)
    assert probe["heavy"] == [] and probe["chars"] > 100, probe
    print(f"jooci {command + ' ' if command else ''}--help: {probe['seconds']:.2f} s in-process")


def test_unknown_command_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fly"])


def test_prepare_reports_a_missing_root(tmp_path, capsys):
    assert main(["prepare", "librispeech", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jooci prepare: error: ") and "nope" in err and err.count("\n") == 1


def test_pretrain_errors_are_one_line(tmp_path, capsys):
    assert main(["pretrain", "--config", "huge", "--out", str(tmp_path / "r"), "--all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jooci pretrain: error: ") and "huge" in err and "tiny" in err and err.count("\n") == 1
    assert main(["pretrain", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r"), "--all"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["pretrain", "--config", "tiny", "--out", str(tmp_path / "r"), "--all", "schedule.nope=1"]) == 2
    assert "schedule.nope" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_pretrain_config_takes_a_preset_name_or_a_file(tmp_path):
    from jooci.cli.pretrain import config_file
    from jooci.train.config import preset_path

    assert config_file("small") == preset_path("small") and preset_path("small").is_file()
    assert config_file(None) is None
    mine = tmp_path / "tiny"  # a file named like a preset is read as the file
    mine.write_text("{}")
    assert config_file(str(mine)) == mine
    assert config_file("configs/tiny.yaml").name == "tiny.yaml"


def test_extract_writes_shards(synth_corpus, tmp_path, capsys):
    from jooci.models import HuBERTBaseline

    HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path / "m")
    code = main(["extract", "--model", str(tmp_path / "m"), "--manifest", str(synth_corpus / "dev.jsonl"),
                 "--out", str(tmp_path / "feats"), "--layers", "0", "2", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "layers [0, 2]" in out and "0 file(s) skipped" in out
    assert any((tmp_path / "feats").iterdir())
    # the library's own error type (a layer out of range) is one line, not a traceback
    code = main(["extract", "--model", str(tmp_path / "m"), "--manifest", str(synth_corpus / "dev.jsonl"),
                 "--out", str(tmp_path / "feats2"), "--layers", "99", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("jooci extract: error: ") and "99" in err and "Traceback" not in err


def test_extract_names_a_bad_model_folder(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text("")
    assert main(["extract", "--model", str(tmp_path / "nomodel"), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jooci extract: error: ") and "nomodel" in err


def test_a_bug_is_not_hidden_as_an_input_error(monkeypatch):
    """A KeyError (or any non-input error) keeps its traceback: it is a bug to report."""
    import jooci.cli.report as R

    monkeypatch.setattr("jooci.superb.report.write_report", lambda *a, **k: {}["missing"])
    with pytest.raises(KeyError):
        R.run(build_parser().parse_args(["report", "x", "--out", "y"]))


def test_values_the_parser_spells_out_agree_with_the_library():
    """The parser names a few library values itself, so that --help needs no torch."""
    from jooci.cli import evaluate, prepare, pretrain, targets
    from jooci.data.corpora import SCANNERS
    from jooci.superb.runner import TASKS, EvalConfig
    from jooci.targets.pipeline import STEPS
    from jooci.train.config import PHASES

    assert prepare.KINDS == tuple(SCANNERS)
    assert pretrain.PHASES == tuple(PHASES)
    assert evaluate.TASKS == tuple(TASKS) and evaluate.THREADS == EvalConfig.threads
    assert targets.STEPS == ("all", *STEPS)


def test_the_library_parses_no_command_line():
    """Library modules take typed arguments and raise errors: none imports argparse or calls sys.exit
    (parsing and exit codes are the CLI's)."""
    import ast
    from pathlib import Path

    import jooci

    root = Path(jooci.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(root / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if "argparse" in names:
                offenders.append(f"{path.relative_to(root)}: imports argparse")
            if isinstance(node, ast.Attribute) and node.attr == "exit" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.relative_to(root)}: sys.exit")
    assert offenders == []


def test_ctrl_c_is_a_line_and_status_130(monkeypatch, capsys):
    import jooci.cli.report as R

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "run", interrupted)
    assert main(["report", "x", "--out", "y"]) == 130
    assert capsys.readouterr().err.strip() == "jooci report: interrupted"

"""The layer contracts in pyproject.toml (import-linter) hold, cover every module, and catch a
violation when one is made."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jooci

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(jooci.__file__).resolve().parent


def _lint(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the contracts of ``cwd/pyproject.toml`` on the jooci found in ``package_parent``."""
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"})


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_layer_contracts_hold():
    done = _lint(ROOT, PACKAGE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_module_of_jooci_sits_in_a_layer():
    """A new top-level module must be placed in the layers contract, or it would be unconstrained."""
    layers = next(c for c in _contracts() if c["type"] == "layers" and c.get("containers") == ["jooci"])
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | \
              {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert modules == placed


def test_a_broken_layer_is_reported(tmp_path):
    """The contracts bite: a model importing data, and a circle inside the demo, fail the lint."""
    shutil.copytree(PACKAGE, tmp_path / "jooci", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "jooci" / "models" / "_util.py", "a") as f:
        f.write("\nfrom jooci.data import manifest  # a model reading manifests\n")
    with open(tmp_path / "jooci" / "demo" / "common.py", "a") as f:
        f.write("\nfrom jooci.demo.seeds import seed_table  # a circle\n")
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "jooci.models._util -> jooci.data.manifest" in done.stdout
    assert "No cycles are allowed in jooci.demo" in done.stdout

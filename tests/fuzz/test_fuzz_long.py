"""The fuzz tests with LONG_FACTOR times more examples (``pytest -m slow tests/fuzz``; minutes)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_long():
    here = Path(__file__).parent
    env = {**os.environ, "JOOCI_FUZZ_LONG": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", str(here), "-q", "-m", "not slow", "-p", "no:cacheprovider"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]

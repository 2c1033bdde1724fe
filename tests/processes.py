"""A child process a test kills where it chooses: the child writes a ready file when it reaches
that point (and waits there); the test waits for the file, then SIGKILLs the child."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_when_ready(cmd: list[str], ready: Path, log_path: Path, where: str) -> str:
    """Run ``cmd`` (output to ``log_path``), SIGKILL it once ``ready`` exists; ``ready``'s text.

    A child that ends first, or never gets there within 5 minutes (a guard against a hang, not a
    speed check), fails the test with its log's tail; ``where`` names the point in that message.
    """
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not ready.exists():
                assert child.poll() is None, \
                    f"the child ended (status {child.returncode}) before {where}: {log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"the child never reached {where}"
                time.sleep(0.05)
            time.sleep(0.05)  # the ready file is written in one call; let it land whole
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return ready.read_text()

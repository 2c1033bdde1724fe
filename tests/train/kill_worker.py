"""Run by tests/train/test_killed.py as a child process; not a test module.

``python kill_worker.py HOOK STEP READY -- ARGS...`` runs ``jooci ARGS...`` (one thread) with one
hook installed, which stops the process at a known point and waits there to be killed:

- ``weights``: in the checkpoint of step STEP, after writing the first half of
  ``weights.safetensors``;
- ``state``: in the checkpoint of step STEP, after writing ``weights.safetensors`` whole and the
  first half of ``state.pt``;
- ``step``: at the start of optimizer step STEP (steps 1 .. STEP-1 done; one micro-batch a step).

When it is there it creates the file READY; the parent then sends SIGKILL. The hooks replace
functions of this process only (monkeypatching, as a test would); the product code is unchanged.
"""

import io
import os
import sys
import time
from pathlib import Path

import safetensors.torch
import torch

import jooci.train.checkpoint as checkpoint
import jooci.train.steps as steps
from jooci.cli import main

hook, at, ready = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
assert sys.argv[4] == "--"
args = sys.argv[5:]
tmp_name = f".step_{at:08d}.tmp"  # atomic_dir's temporary folder for that checkpoint


def wait_to_be_killed(partial: Path, data: bytes) -> None:
    with open(partial, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    ready.write_text(str(len(data)))  # the parent reads the full size
    time.sleep(600)
    sys.exit("not killed within 600 s")


if hook == "weights":
    real_save_file = checkpoint.save_file

    def save_file(tensors, filename, *a, **k):
        if Path(filename).parent.name == tmp_name:
            wait_to_be_killed(Path(filename), safetensors.torch.save(tensors))
        return real_save_file(tensors, filename, *a, **k)

    checkpoint.save_file = save_file
elif hook == "state":
    real_save = torch.save

    def save(obj, f, *a, **k):
        if isinstance(f, (str, os.PathLike)) and Path(f).parent.name == tmp_name:
            buf = io.BytesIO()
            real_save(obj, buf, *a, **k)
            wait_to_be_killed(Path(f), buf.getvalue())
        return real_save(obj, f, *a, **k)

    torch.save = save
elif hook == "step":
    real_step, calls = steps.content_step, [0]

    def content_step(*a, **k):
        calls[0] += 1
        if calls[0] == at:
            ready.write_text("0")
            time.sleep(600)
            sys.exit("not killed within 600 s")
        return real_step(*a, **k)

    steps.content_step = content_step
else:
    sys.exit(f"unknown hook {hook!r}")

torch.set_num_threads(1)
sys.exit(main(args))

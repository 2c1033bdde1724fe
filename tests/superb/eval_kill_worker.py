"""Run by tests/superb/test_killed_eval.py as a child process; not a test module.

``python eval_kill_worker.py READY -- ARGS...`` runs ``jooci ARGS...`` (an evaluation) with
``run_task`` of the runner replaced, in this process only, by one that trains the first task as
usual and, at the start of the second, creates the file READY and waits there to be killed.
"""

import sys
import time
from pathlib import Path

import jooci.superb.runner as runner
from jooci.cli import main

ready = Path(sys.argv[1])
assert sys.argv[2] == "--"
real, calls = runner.run_task, []


def run_task(task, *a, **k):
    calls.append(task.name)
    if len(calls) == 2:
        ready.write_text(task.name)
        time.sleep(600)
        sys.exit("not killed within 600 s")
    return real(task, *a, **k)


runner.run_task = run_task
sys.exit(main(sys.argv[3:]))

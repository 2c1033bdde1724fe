"""``jooci demo``: corpus -> pretraining -> evaluation -> speaker check -> report, as one resumable run.

Modules, in the order they depend on each other (each imports only those above it):

- :mod:`.common`: the tasks, the ablations, the control's label (no torch)
- :mod:`.checks`: the control model and the speaker check (the demo's own measurements)
- :mod:`.report`: ``report.md`` and the verdict its fixed rules give
- :mod:`.pipeline`: :func:`run_demo`, the stages and their time estimate
- :mod:`.seeds`: :func:`run_demo_seeds`, the demo once per seed and the summary over the seeds

Every module imports torch only inside the functions that need it.
"""

from jooci.demo.checks import speaker_check, untrained_other_twin
from jooci.demo.common import ABLATIONS, CONTENT_TASKS, CONTROL, OTHER_TASKS, TASKS, UNTRAINED
from jooci.demo.pipeline import estimate_seconds, run_demo
from jooci.demo.report import setting, speaker_reading, verdict, write_demo_report
from jooci.demo.seeds import differences, load_results, run_demo_seeds, seed_table, write_seed_summary

__all__ = [
    "ABLATIONS", "CONTENT_TASKS", "CONTROL", "OTHER_TASKS", "TASKS", "UNTRAINED",
    "differences", "estimate_seconds", "load_results", "run_demo", "run_demo_seeds", "seed_table",
    "setting", "speaker_check", "speaker_reading", "untrained_other_twin", "verdict", "write_demo_report",
    "write_seed_summary",
]

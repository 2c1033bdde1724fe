"""SUPERB-style evaluation of frozen upstreams: weighted layer sum, PR/ASR/SID/ASV/ER, layer probes.

``evaluate(model, data, tasks, out_dir, config)`` is the Python entry point; ``jooci evaluate`` and
``jooci report`` are :mod:`.runner` and :mod:`.report`. See docs/evaluation.md.
"""

from jooci.superb.runner import TASKS, EvalConfig, default_settings, evaluate
from jooci.superb.tasks.common import TaskSettings

__all__ = ["TASKS", "EvalConfig", "TaskSettings", "default_settings", "evaluate"]

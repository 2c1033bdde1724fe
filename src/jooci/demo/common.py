"""Names every part of the demo shares: the tasks, the ablations, the control's label.

Nothing here imports torch or another demo module, so the command line can offer the ablations
as choices without loading a model.
"""

from __future__ import annotations

# The SUPERB-style tasks the demo evaluates, and which stream each is meant to test.
TASKS = ("pr", "asr", "sid", "asv", "er")
CONTENT_TASKS, OTHER_TASKS = ("pr", "asr"), ("sid", "asv", "er")

# name -> (what it tests, config overrides). Each retrains phases 1-2 from the shared Content model
# and teacher, so one ablation costs one JOOCI training, not a whole pipeline.
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "no-append": ("without split-and-append (the Other encoder sees no Content states)",
                  ["model.other.append_dim=0"]),
    "no-stopgrad": ("without the stop-gradient (Other losses reach the Content encoder through the appends)",
                    ["model.append_gradient=true"]),
    "no-regulariser": ("without the gradient-reversal content adversary", ["losses.regulariser=0"]),
    "recon": ("with the log-mel reconstruction decoder",
              ["losses.reconstruction=1", "model.mel_decoder={{dim: {dim}}}"]),
    "unfrozen-phase1": ("Content not frozen in phase 1: it keeps training on masked prediction there "
                        "(phase 1's steps on top of the equal budget)",
                        ["schedule.freeze_content_phase1=false", "schedule.freeze_frontend_phase1=false"]),
}

# The demo's corpora: name -> JOOCI-synth settings. "clean": format 2, 60 minutes. "sessions": 360
# speakers recorded in 8 sessions each through rooms, microphones, telephone bands and noise, with
# test sets that resolve about 2 points (docs/evaluation.md); 402 minutes.
CORPORA: dict[str, dict] = {
    "clean": {"minutes": 60.0, "speakers": 48},
    "sessions": {"minutes": 402.0, "speakers": 360, "sessions": 8, "test_sessions": 2, "heldout_fraction": 0.25,
                 "dev_heldout_fraction": 0.05},
}

# The control row: the demo's JOOCI with its Other encoder untrained (initialised from the seed;
# frontend and Content as trained): what a second encoder gives the downstream without training.
CONTROL = "jooci untrained-other"

# The speaker check's reference row: the teacher's architecture initialised from the seed, untrained.
UNTRAINED = "untrained teacher (same architecture, no training)"


def duration(seconds: float) -> str:
    """``12 s`` below 90 seconds, else ``1.5 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"

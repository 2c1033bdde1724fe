"""An s3prl upstream for jooci checkpoints, so a model plugs into s3prl's SUPERB recipes.

s3prl's contract (``s3prl/upstream/example/expert.py``, ``s3prl/upstream/interfaces.py``):
``forward(wavs)`` takes a list of 1-D 16 kHz waveforms and returns a dict whose
``"hidden_states"`` is a list of ``(B, T, D)`` tensors of one shape (the Featurizer sums them),
plus ``"last_hidden_state"``; ``get_downsample_rates(key)`` gives the stride in samples (320).
Optional task keys (``"PR"``, ``"ASR"``, ``"SID"``, ``"ASV"``, ``"ER"``, ...) pick a layer set per task
with ``-s KEY``; as in jooci's own evaluation, every task key holds all hidden states (Content and
Other in one weighted sum), and ``"content_hidden_states"`` / ``"other_hidden_states"`` hold each
encoder alone for ablations.

Use in an s3prl checkout: create ``s3prl/upstream/jooci/hubconf.py`` with
``from jooci.s3prl import jooci_local  # noqa: F401`` (and an empty ``expert.py`` is not needed),
add ``from .upstream.jooci.hubconf import *`` to ``s3prl/hub.py``, then
``python run_downstream.py -m train -u jooci_local -k /path/to/model_folder -d ctc -c ...``.

Padded batches are handled with lengths (the model's norms are mask-aware), so each waveform
gets the features it would get alone; frames past an item's length are zero. Not a subclass of
s3prl's ``UpstreamBase``: the hooks it offers are not needed, and ``s3prl`` stays optional.
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from jooci.features import CNN_STRIDE
from jooci.padding import pad_waveforms

TASK_KEYS = ("PR", "ASR", "SID", "ASV", "ER", "KS", "IC", "SF", "SD", "QbE")


class JOOCIUpstream(nn.Module):
    """s3prl upstream around a jooci model folder (JOOCI, the HuBERT baseline or a speaker
    teacher), frozen by default.

    Args:
        ckpt: the model folder (``config.json`` + ``model.safetensors``), or a loaded model.
        model_config: accepted for s3prl's ``-g`` option; unused (the folder holds the config).
    """

    def __init__(self, ckpt: str | os.PathLike | nn.Module, model_config: str | None = None, **kwargs):
        super().__init__()
        if isinstance(ckpt, nn.Module):
            self.model = ckpt
        else:
            from jooci.hub import load

            self.model = load(ckpt)
        self.model.eval()

    def get_downsample_rates(self, key: str) -> int:
        """Samples per frame for every key: 320 (50 Hz at 16 kHz)."""
        return CNN_STRIDE

    def forward(self, wavs: list[Tensor]) -> dict[str, object]:
        """wavs: list of (S_i,) float tensors at 16 kHz -> {"hidden_states": [(B, T, D)] * (1 + L + N),
        "last_hidden_state", "content_hidden_states", "other_hidden_states", "hidden_states_lengths",
        and every task key}."""
        if not wavs:
            raise ValueError("wavs is empty")
        batch, lengths = pad_waveforms(wavs, device=wavs[0].device)
        out = self.model.extract_features(batch, lengths)
        states = list(out.hidden_states)
        result: dict[str, object] = {
            "hidden_states": states,
            "last_hidden_state": (out.content_states or states)[-1],  # a teacher has no Content states
            "content_hidden_states": list(out.content_states),
            "other_hidden_states": list(out.other_states),
            "hidden_states_lengths": out.lengths,
        }
        for key in TASK_KEYS:
            result[key] = states
        return result


def jooci_local(ckpt: str | os.PathLike, model_config: str | None = None, *args, **kwargs) -> JOOCIUpstream:
    """hubconf entry (s3prl's ``*_local`` convention: ``-u jooci_local -k MODEL_FOLDER``)."""
    if not os.path.isdir(ckpt):
        raise FileNotFoundError(f"{ckpt}: not a jooci model folder (config.json + model.safetensors)")
    return JOOCIUpstream(ckpt, model_config, *args, **kwargs)

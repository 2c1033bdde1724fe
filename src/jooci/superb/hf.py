"""Hugging Face ``transformers`` upstreams: a ``HubertModel``, ``WavLMModel`` or ``Wav2Vec2Model``
folder written by ``save_pretrained``, evaluated in the same harness as jooci models.

A folder is recognised by its ``config.json``: a ``model_type`` of ``hubert``, ``wavlm`` or
``wav2vec2`` and none of the keys of a jooci folder (``format_version`` + ``config``). Weights are
``model.safetensors`` or ``pytorch_model.bin`` (or their sharded index); a checkpoint with a head
(``...ForCTC``, ``...ForPreTraining``) loads too, its head left out. Every parameter of the bare
model must come from the folder: a folder whose weights leave some at their random initialisation
is refused (``masked_spec_embed`` excepted: only training uses it).

What the harness reads (:class:`HFUpstream`):

- the hidden states: all of ``output_hidden_states=True``, i.e. the Transformer input (the
  projected CNN frames after the positional convolution) and each Transformer layer, named
  ``L0`` .. ``LN``. They are not split into Content and Other: ``--layers content`` / ``other``
  are refused for these models;
- frames at 50 Hz: the wav2vec 2.0 CNN (receptive field 400 samples, hop 320). A config with
  other kernels or strides, or with an adapter, is refused;
- the waveform as the model's feature extractor gives it: zero-mean unit-variance per utterance
  over its own samples when ``do_normalize`` (``(x - mean) / sqrt(var + 1e-7)``, HF's
  ``Wav2Vec2FeatureExtractor``), zero padding after each utterance's end;
- padded batches with the attention mask when ``return_attention_mask``, else zero-padded with
  no mask and each utterance's frames cropped to its own length (``Wav2Vec2FeatureExtractor``'s
  docstring: ``"group"`` models such as wav2vec2-base were trained without the mask and must not
  get it; ``"layer"`` models take it). With the mask and a ``"layer"`` CNN, an utterance's states
  in a batch equal its states alone up to float error. Without it, or with a ``"group"`` CNN, they
  depend on the padding (the first CNN layer's GroupNorm statistics, and unmasked attention,
  include the zeros), as in HF; an utterance as long as its batch's longest gets exactly its
  states alone. Extraction batches utterances of similar length (longest first), so the padding
  stays small.

``do_normalize`` and ``return_attention_mask`` come from the folder's ``preprocessor_config.json``,
as HF's own feature extractor reads them. A folder without one (``model.save_pretrained`` alone)
takes both from ``feat_extract_norm``: true for ``"layer"``, false for ``"group"``, the pairing
of the published checkpoints (wav2vec 2.0 large-lv60, HuBERT Large/XL and WavLM Large normalise
and take the mask; wav2vec2-base and HuBERT Base do neither; WavLM Base+ ships a
``preprocessor_config.json`` without normalisation and with the mask, which is then followed).

The cache fingerprint (:func:`fingerprint`) covers config.json, preprocessor_config.json, the
weight files (resolved path, size, modification time), the reading settings above and the
transformers version, so a changed model or a changed reading is extracted anew.

``transformers`` (the ``hf`` extra) is imported only when such a folder is loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from jooci.models.outputs import FeatureOutput

HF_MODEL_CLASSES = {"hubert": "HubertModel", "wavlm": "WavLMModel", "wav2vec2": "Wav2Vec2Model"}
"""config.json ``model_type`` -> the transformers class loaded."""

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PREPROCESSOR_NAME = "preprocessor_config.json"
READER_VERSION = 1  # part of the fingerprint: bump when the way states are read changes
RECEPTIVE_FIELD, HOP = 400, 320  # the wav2vec 2.0 CNN: 50 Hz frames
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm's

# parameters a folder may lack: used only in training (masked time steps' embedding)
_TRAINING_ONLY = ("masked_spec_embed",)


class UpstreamError(ValueError):
    """A --model folder the harness cannot read; the message names the folder and what it holds."""


@dataclass(frozen=True)
class HFFolder:
    """A recognised transformers folder and how its model is read."""

    path: Path
    model_type: str
    config: dict[str, Any]
    do_normalize: bool
    attention_mask: bool
    settings_source: str  # "preprocessor_config.json", or the default's reason
    weights: tuple[Path, ...]

    @property
    def kind(self) -> str:
        return f"hf-{self.model_type}"

    def reading(self) -> dict[str, Any]:
        """How the waveform is fed (results.json's ``model.hf``)."""
        return {"model_type": self.model_type, "class": HF_MODEL_CLASSES[self.model_type],
                "do_normalize": self.do_normalize, "attention_mask": self.attention_mask,
                "settings_from": self.settings_source,
                "feat_extract_norm": self.config.get("feat_extract_norm", "group")}


def describe(folder: Path) -> str:
    """What a folder holds, in a few words (for error messages)."""
    if not folder.exists():
        return "no such file or folder"
    if not folder.is_dir():
        return "a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:6]) + (f", ... ({len(names)} entries)" if len(names) > 6 else "")
    return f"it holds {shown}"


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is not a readable JSON object."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_jooci_config(meta: dict[str, Any]) -> bool:
    """config.json of a jooci model folder (:mod:`jooci.models.folder`)."""
    return "format_version" in meta and "config" in meta


def inspect_folder(path: str | os.PathLike) -> HFFolder | None:
    """The transformers folder at ``path``, or None when its config.json is not a transformers
    config of a supported type (no config.json, a jooci config, another model type).

    Raises:
        UpstreamError: a supported config whose folder cannot be evaluated (no weights, frames
            other than 50 Hz, an adapter, a bad preprocessor_config.json).
    """
    d = Path(path)
    meta = read_json_object(d / "config.json")
    if meta is None or is_jooci_config(meta) or meta.get("model_type") not in HF_MODEL_CLASSES:
        return None
    model_type = str(meta["model_type"])
    weights = tuple(d / name for name in WEIGHT_FILES if (d / name).is_file())
    if not weights:
        raise UpstreamError(f"{d}: a Hugging Face {model_type} config without weights (none of "
                            f"{', '.join(WEIGHT_FILES)}; {describe(d)})")
    kernels, strides = list(meta.get("conv_kernel", [10, 3, 3, 3, 3, 2, 2])), list(meta.get("conv_stride", [5, 2, 2, 2, 2, 2, 2]))
    hop = math.prod(strides)
    field_ = 1 + sum((k - 1) * math.prod(strides[:i]) for i, k in enumerate(kernels))
    if (field_, hop) != (RECEPTIVE_FIELD, HOP) or meta.get("add_adapter"):
        what = "an adapter after the CNN" if meta.get("add_adapter") else f"a CNN of receptive field {field_} and hop {hop}"
        raise UpstreamError(f"{d}: {model_type} with {what}; the harness reads 50 Hz frames "
                            f"(the wav2vec 2.0 CNN: receptive field {RECEPTIVE_FIELD}, hop {HOP})")
    norm = meta.get("feat_extract_norm", "group")
    pre_path = d / PREPROCESSOR_NAME
    if pre_path.is_file():
        pre = read_json_object(pre_path)
        if pre is None:
            raise UpstreamError(f"{pre_path}: not a JSON object")
        # Wav2Vec2FeatureExtractor's defaults for keys the file leaves out
        do_normalize = bool(pre.get("do_normalize", True))
        mask = bool(pre.get("return_attention_mask", False))
        source = PREPROCESSOR_NAME
    else:
        do_normalize = mask = norm == "layer"
        source = f"default: no {PREPROCESSOR_NAME}, feat_extract_norm {norm!r}"
    return HFFolder(d, model_type, meta, do_normalize, mask, source, weights)


def _transformers():
    try:
        import transformers
    except ImportError as e:
        from jooci.extras import EXTRAS, MissingExtraError, missing_message

        message = (missing_message("transformers") if "transformers" in EXTRAS else
                   "Hugging Face upstreams need transformers, which is not installed: pip install 'jooci[hf]'")
        raise MissingExtraError(message) from e
    return transformers


def fingerprint(folder: HFFolder) -> str:
    """The cache key of a folder's features (module docstring)."""
    h = hashlib.blake2b(digest_size=12)
    h.update((folder.path / "config.json").read_bytes())
    pre = folder.path / PREPROCESSOR_NAME
    h.update(pre.read_bytes() if pre.is_file() else b"-")
    for w in folder.weights:
        st = w.stat()
        h.update(f"{w.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(json.dumps({**folder.reading(), "reader": READER_VERSION,
                         "transformers": _transformers().__version__}, sort_keys=True).encode())
    return f"{folder.kind}-{h.hexdigest()}"


class HFUpstream(nn.Module):
    """A transformers speech model behind the ``extract_features`` of jooci models."""

    def __init__(self, model: nn.Module, do_normalize: bool, attention_mask: bool):
        super().__init__()
        self.model = model
        self.do_normalize, self.attention_mask = do_normalize, attention_mask
        self.model_type = f"hf-{model.config.model_type}"

    def prepare(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) padded waveforms -> what the model is fed (normalised per utterance over its own
        samples if ``do_normalize``, zero after its end) and the (B, S) mask of real samples."""
        x = waveforms.float()
        valid = torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None]
        if self.do_normalize:
            n = lengths.to(x.device, torch.float32).clamp_min(1)[:, None]
            mean = (x * valid).sum(1, keepdim=True) / n
            var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / n  # population variance, as np.var
            x = (x - mean) / torch.sqrt(var + NORM_EPS)
        return x * valid, valid

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> FeatureOutput:
        """(B, S) 16 kHz waveforms -> every hidden state (B, T, D) at 50 Hz; frames past an
        utterance's own count are padding (``padding_mask`` True)."""
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        x, valid = self.prepare(waveforms, lengths)
        mask = valid.long() if self.attention_mask else None
        out = self.model(x, attention_mask=mask, output_hidden_states=True, return_dict=True)
        states = list(out.hidden_states)
        n = self.model._get_feat_extract_output_lengths(lengths.to(x.device)).long().clamp_min(0)
        pad = torch.arange(states[0].shape[1], device=x.device)[None] >= n[:, None]
        return FeatureOutput(states, [], [], n, pad, None)


def load_hf(folder: HFFolder, device: str = "cpu") -> HFUpstream:
    """The folder's model in eval mode on ``device``, float32.

    Raises:
        UpstreamError: weights that do not fit the config (keys named), or that transformers
            cannot read.
        jooci.extras.MissingExtraError: transformers is not installed.
    """
    transformers = _transformers()
    cls = getattr(transformers, HF_MODEL_CLASSES[folder.model_type])
    bars = transformers.utils.logging
    bars_were_on = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # its "Loading weights" bar would interleave with jooci's output
    try:
        model, info = cls.from_pretrained(str(folder.path), local_files_only=True, dtype=torch.float32,
                                          output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as e:
        text = " ".join(str(e).split())
        raise UpstreamError(f"{folder.path}: transformers cannot load this {folder.model_type} folder "
                            f"({type(e).__name__}: {text[:300]})") from None
    finally:
        if bars_were_on:
            bars.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_TRAINING_ONLY)]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched:
        problems = ([f"{len(missing)} parameter(s) not in the weights ({', '.join(sorted(missing)[:4])})"]
                    if missing else []) + ([f"{len(mismatched)} of another shape"] if mismatched else [])
        raise UpstreamError(f"{folder.path}: the weights do not fit its config.json ({'; '.join(problems)}): "
                            "evaluating would use randomly initialised parameters")
    return HFUpstream(model.to(device).eval(), folder.do_normalize, folder.attention_mask)


__all__ = ["HF_MODEL_CLASSES", "HFFolder", "HFUpstream", "UpstreamError", "describe", "fingerprint",
           "inspect_folder", "is_jooci_config", "load_hf"]

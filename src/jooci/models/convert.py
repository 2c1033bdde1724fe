"""Weight import: HF ``HubertModel``, fairseq HuBERT checkpoints, 3D-Speaker RDINO ECAPA-TDNN.

Keys are mapped by name, one rule per module, and then checked both ways: a converter refuses a
checkpoint with a key it cannot place, a target parameter it cannot fill, or a shape that does not
fit, with a :class:`ConversionError` that names the keys. Nothing is loaded half-way.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from jooci.models._util import state_dict_problems
from jooci.models.baseline import BaselineConfig, HuBERTBaseline
from jooci.models.content import ContentConfig
from jooci.models.frontend import WAV2VEC2_CONV, FrontendConfig
from jooci.models.heads import ClusterHeadsConfig, DINOHeadConfig
from jooci.models.res2net import EcapaConfig
from jooci.models.speaker import SpeakerConfig, SpeakerEncoderConfig, SpeakerModel
from jooci.models.transformer import TransformerConfig

log = logging.getLogger(__name__)

MAX_NAMED = 10
MAX_CONV_ITEMS = 1024
"""The longest list ``conv_feature_layers`` may expand to (wav2vec2 / HuBERT have 7 layers)."""


class ConversionError(Exception):
    """A foreign checkpoint that does not fit; the message names the offending keys."""


def _names(keys: list[str]) -> str:
    more = f" ... and {len(keys) - MAX_NAMED} more" if len(keys) > MAX_NAMED else ""
    return ", ".join(keys[:MAX_NAMED]) + more


def _load_checked(model: nn.Module, mapped: dict[str, Tensor], prefixes: tuple[str, ...],
                  optional: set[str], source: str) -> None:
    """Load ``mapped`` into the parameters of ``model`` under ``prefixes``, all-or-nothing."""
    target = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    problems = state_dict_problems(mapped, target, optional, MAX_NAMED)
    if problems:
        raise ConversionError(f"{source}: " + "; ".join(problems))
    with torch.no_grad():
        model.load_state_dict({k: v.to(target[k].dtype) for k, v in mapped.items()}, strict=False)


def _rename(state: Mapping[str, Tensor], rules: list[tuple[str, str]], source: str,
            ignore: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """Apply the first matching regex rule to every key; keys no rule matches are refused."""
    out: dict[str, Tensor] = {}
    unmatched = []
    for k, v in state.items():
        if k.startswith(ignore):
            continue
        for pat, rep in rules:
            new, n = re.subn(pat, rep, k)
            if n:
                out[new] = v
                break
        else:
            unmatched.append(k)
    if unmatched:
        raise ConversionError(f"{source}: unknown key(s) {_names(sorted(unmatched))}")
    return out


def _load_torch_file(path: str | os.PathLike, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except Exception as e:
        if not trust_pickle:
            raise ConversionError(
                f"{path}: holds Python objects besides tensors, which weights_only loading refuses "
                f"({type(e).__name__}). fairseq/3D-Speaker store configs as omegaconf/argparse "
                "objects; if you trust this file, pass trust_pickle=True (it runs arbitrary code "
                "from the file)") from None
        return torch.load(path, map_location="cpu", weights_only=False)  # nosec: caller trusts it


def _heads_for(content: ContentConfig, clusters: ClusterHeadsConfig | None) -> ClusterHeadsConfig:
    if clusters is not None:
        return clusters
    n = content.num_layers
    layers = tuple(sorted({max(1, round(n * 5 / 12)), max(1, round(n * 9 / 12)), n}))
    ks = (100, 500, 1000)[-len(layers):]
    return ClusterHeadsConfig(dim=content.dim, num_clusters=ks, layers=layers)


# ----------------------------------------------------------------------------- HF HubertModel

_HF_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"frontend.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"frontend.conv_layers.\1.norm."),
    (r"^feature_projection\.layer_norm\.", "frontend.layer_norm."),
    (r"^feature_projection\.projection\.", "content.projection."),
    (r"^masked_spec_embed$", "content.mask_embedding"),
    (r"^encoder\.pos_conv_embed\.conv\.(weight_g|parametrizations\.weight\.original0)$",
     "content.transformer.pos_conv.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv_embed\.conv\.(weight_v|parametrizations\.weight\.original1)$",
     "content.transformer.pos_conv.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv_embed\.conv\.bias$", "content.transformer.pos_conv.conv.bias"),
    (r"^encoder\.layer_norm\.", "content.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"content.transformer.layers.\1.attention.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"content.transformer.layers.\1.attention_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"content.transformer.layers.\1.feed_forward.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"content.transformer.layers.\1.feed_forward.fc2."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"content.transformer.layers.\1.final_norm."),
]


def _count_indexed(keys: list[str], pattern: str) -> int:
    idx = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(idx) + 1 if idx else 0


def _hubert_configs_from_state(state: Mapping[str, Tensor], names: dict[str, str], num_heads: int | None,
                               strides: tuple[int, ...] | None, source: str) -> tuple[FrontendConfig, ContentConfig]:
    """Infer frontend/Content configs from tensor shapes (``names`` maps roles to key patterns)."""
    keys = list(state)
    n_conv = _count_indexed(keys, names["conv"])
    if n_conv == 0:
        raise ConversionError(f"{source}: no CNN layers found (expected keys like {names['conv_example']})")
    convs = []
    for i in range(n_conv):
        w = state[names["conv_weight"].format(i)]
        convs.append((int(w.shape[0]), int(w.shape[2])))
    if strides is None:
        std = tuple(k for _, k, _ in WAV2VEC2_CONV)
        if tuple(k for _, k in convs) != std:
            raise ConversionError(f"{source}: conv kernels {[k for _, k in convs]} are not wav2vec2's; "
                                  "pass the config (strides are not stored in the weights)")
        strides = tuple(s for _, _, s in WAV2VEC2_CONV)
    if len(strides) != n_conv:
        raise ConversionError(f"{source}: {n_conv} conv layers but {len(strides)} strides in the config")
    norm_mode = "layer" if names["layer_norm_1"] in state else "group"
    frontend = FrontendConfig(
        conv_layers=tuple((c, k, s) for (c, k), s in zip(convs, strides)),
        norm_mode=norm_mode,  # type: ignore[arg-type]
        conv_bias=names["conv_bias_0"] in state,
        output_norm=names["out_norm"] in state,
    )
    proj = state[names["proj"]]
    dim = int(proj.shape[0])
    n_layers = _count_indexed(keys, names["layer"])
    ffn = int(state[names["fc1"]].shape[0])
    pos_v = state[names["pos_v"]]
    transformer = TransformerConfig(
        dim=dim, num_layers=n_layers,
        num_heads=num_heads if num_heads is not None else max(1, dim // 64),  # HuBERT uses 64-d heads
        ffn_dim=ffn, pos_conv_kernel=int(pos_v.shape[2]), pos_conv_groups=dim // int(pos_v.shape[1]))
    return frontend, ContentConfig(input_dim=int(proj.shape[1]), transformer=transformer)


def from_hf_hubert(hf_model_or_state_dict: nn.Module | Mapping[str, Tensor],
                   clusters: ClusterHeadsConfig | None = None,
                   num_heads: int | None = None) -> HuBERTBaseline:
    """Import HF transformers ``HubertModel`` weights into a :class:`HuBERTBaseline`.

    Args:
        hf_model_or_state_dict: a ``HubertModel`` (its config is read) or its state dict (a
            ``HubertForCTC``'s ``hubert.`` prefix is stripped; other heads are refused). From a
            bare state dict the config is inferred from shapes; heads default to 64-d each and
            strides to wav2vec2's.
        clusters: label sets for the (freshly initialised) cluster heads; default: up to three sets
            K 100/500/1000 on layers ~5/12, 9/12 and the top.
        num_heads: attention heads when importing a bare state dict.

    Raises:
        ConversionError: a pre-LN ("stable layer norm") or batch-norm pos-conv model, an unknown
            key, a missing parameter or a shape mismatch; the message names the keys.
    """
    source = "HF HubertModel"
    strides = None
    if isinstance(hf_model_or_state_dict, nn.Module):
        cfg = getattr(hf_model_or_state_dict, "config", None)
        if cfg is not None:
            if getattr(cfg, "do_stable_layer_norm", False):
                raise ConversionError(f"{source}: do_stable_layer_norm=True (pre-LN, HuBERT Large/XL) "
                                      "is not the post-LN HuBERT-Base layout of the Content encoder")
            if getattr(cfg, "conv_pos_batch_norm", False):
                raise ConversionError(f"{source}: conv_pos_batch_norm=True is not supported")
            num_heads = cfg.num_attention_heads
            strides = tuple(cfg.conv_stride)
        state = dict(hf_model_or_state_dict.state_dict())
    else:
        state = dict(hf_model_or_state_dict)
    if any(k.startswith("hubert.") for k in state):
        state = {k[len("hubert."):]: v for k, v in state.items() if k.startswith("hubert.")}
    names = {
        "conv": r"^feature_extractor\.conv_layers\.(\d+)\.conv\.weight$",
        "conv_example": "feature_extractor.conv_layers.0.conv.weight",
        "conv_weight": "feature_extractor.conv_layers.{}.conv.weight",
        "layer_norm_1": "feature_extractor.conv_layers.1.layer_norm.weight",
        "conv_bias_0": "feature_extractor.conv_layers.0.conv.bias",
        "out_norm": "feature_projection.layer_norm.weight",
        "proj": "feature_projection.projection.weight",
        "layer": r"^encoder\.layers\.(\d+)\.",
        "fc1": "encoder.layers.0.feed_forward.intermediate_dense.weight",
        "pos_v": ("encoder.pos_conv_embed.conv.parametrizations.weight.original1"
                  if "encoder.pos_conv_embed.conv.parametrizations.weight.original1" in state
                  else "encoder.pos_conv_embed.conv.weight_v"),
    }
    if names["pos_v"] not in state:
        raise ConversionError(f"{source}: no weight-normed positional conv "
                              "(encoder.pos_conv_embed.conv.weight_v / parametrizations)")
    frontend, content = _hubert_configs_from_state(state, names, num_heads, strides, source)
    model = HuBERTBaseline(BaselineConfig(frontend, content, _heads_for(content, clusters)))
    mapped = _rename(state, _HF_RULES, source)
    _load_checked(model, mapped, ("frontend.", "content."), {"content.mask_embedding"}, source)
    return model.eval()


# ----------------------------------------------------------------------------- fairseq HuBERT

_FAIRSEQ_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"frontend.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"frontend.conv_layers.\1.norm."),  # layer mode
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"frontend.conv_layers.\1.norm."),  # group mode
    (r"^layer_norm\.", "frontend.layer_norm."),
    (r"^post_extract_proj\.", "content.projection."),
    (r"^mask_emb$", "content.mask_embedding"),
    (r"^encoder\.pos_conv\.0\.(weight_g|parametrizations\.weight\.original0)$",
     "content.transformer.pos_conv.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.(weight_v|parametrizations\.weight\.original1)$",
     "content.transformer.pos_conv.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.bias$", "content.transformer.pos_conv.conv.bias"),
    (r"^encoder\.layer_norm\.", "content.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.", r"content.transformer.layers.\1.attention.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"content.transformer.layers.\1.attention_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"content.transformer.layers.\1.feed_forward.fc1."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"content.transformer.layers.\1.feed_forward.fc2."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"content.transformer.layers.\1.final_norm."),
]
# Pretraining-only tensors of a fairseq HuBERT checkpoint: the cluster heads are imported from
# them when there is a single label set, otherwise they are skipped (logged).
_FAIRSEQ_HEADS = ("final_proj.", "label_embs_concat")


def _parse_conv_layers(text: str, source: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers``, a Python expression such as ``"[(512,10,5)] + [(512,3,2)] * 4"``.

    fairseq ``eval``s it; here only list/tuple literals of ints, ``+`` and ``*`` are interpreted.
    """
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Mult) and isinstance(a, (list, tuple)) != isinstance(b, (list, tuple)):
                seq, n = (a, b) if isinstance(a, (list, tuple)) else (b, a)
                if len(seq) * n > MAX_CONV_ITEMS:  # "[(512,3,2)] * 10**9" from a crafted file: no 8 GB list
                    raise ConversionError(f"{source}: conv_feature_layers {text!r} repeats a list "
                                          f"{n} times (at most {MAX_CONV_ITEMS} items are read)")
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ConversionError(f"{source}: cannot read conv_feature_layers {text!r}")

    try:
        layers = value(ast.parse(text, mode="eval").body)
    except SyntaxError:
        raise ConversionError(f"{source}: cannot read conv_feature_layers {text!r}") from None
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise ConversionError(f"{source}: conv_feature_layers {text!r} is not a list of (dim, kernel, stride)")
    return layers


def _fairseq_cfg(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    cfg = ckpt.get("cfg")
    if cfg is not None:
        model_cfg = cfg.get("model") if hasattr(cfg, "get") else None
        if model_cfg is not None:
            return {k: model_cfg[k] for k in model_cfg}
    args = ckpt.get("args")
    if args is not None:
        return dict(vars(args)) if not isinstance(args, Mapping) else dict(args)
    return {}


def from_fairseq_hubert(path: str | os.PathLike | Mapping[str, Any], clusters: ClusterHeadsConfig | None = None,
                        trust_pickle: bool = False) -> HuBERTBaseline:
    """Import a fairseq HuBERT checkpoint (``{"model": state_dict, "cfg": ...}``) into frontend + Content.

    fairseq ``.pt`` files are pickles. They are opened with ``torch.load(weights_only=True)``,
    which only accepts tensors and plain containers; a real fairseq checkpoint also stores its
    config as omegaconf/argparse objects, which that refuses. Pass ``trust_pickle=True`` only for
    files from a source you trust: it unpickles the file, which can run arbitrary code.

    Args:
        path: the ``.pt`` file, or an already loaded checkpoint dict / bare state dict.
        clusters: label sets for the cluster heads. With one label set in the checkpoint
            (``final_proj`` + ``label_embs_concat``) and no ``clusters`` given, that head is imported.
        trust_pickle: allow full unpickling (see above).

    Raises:
        ConversionError: an unreadable file, a pre-LN model (``layer_norm_first``), an unknown
            key, a missing parameter or a shape mismatch; the message names the keys.
    """
    source = str(path) if not isinstance(path, Mapping) else "fairseq state dict"
    ckpt = _load_torch_file(path, trust_pickle) if not isinstance(path, Mapping) else path
    if not isinstance(ckpt, Mapping):
        raise ConversionError(f"{source}: expected a checkpoint dict, got {type(ckpt).__name__}")
    state = ckpt["model"] if "model" in ckpt else ckpt
    cfg = _fairseq_cfg(ckpt)
    if cfg.get("layer_norm_first", False):
        raise ConversionError(f"{source}: layer_norm_first=True (pre-LN, HuBERT Large/XL) is not the "
                              "post-LN HuBERT-Base layout of the Content encoder")
    strides = None
    if "conv_feature_layers" in cfg:
        layers = _parse_conv_layers(str(cfg["conv_feature_layers"]), source)
        strides = tuple(int(s) for _, _, s in layers)
    pos_v = ("encoder.pos_conv.0.parametrizations.weight.original1"
             if "encoder.pos_conv.0.parametrizations.weight.original1" in state else "encoder.pos_conv.0.weight_v")
    if pos_v not in state:
        raise ConversionError(f"{source}: no weight-normed positional conv (encoder.pos_conv.0.weight_v)")
    names = {
        "conv": r"^feature_extractor\.conv_layers\.(\d+)\.0\.weight$",
        "conv_example": "feature_extractor.conv_layers.0.0.weight",
        "conv_weight": "feature_extractor.conv_layers.{}.0.weight",
        "layer_norm_1": "feature_extractor.conv_layers.1.2.1.weight",
        "conv_bias_0": "feature_extractor.conv_layers.0.0.bias",
        "out_norm": "layer_norm.weight",
        "proj": "post_extract_proj.weight",
        "layer": r"^encoder\.layers\.(\d+)\.",
        "fc1": "encoder.layers.0.fc1.weight",
        "pos_v": pos_v,
    }
    frontend, content = _hubert_configs_from_state(state, names, cfg.get("encoder_attention_heads"), strides, source)
    head_state = None
    if clusters is None and "final_proj.weight" in state and "label_embs_concat" in state:
        proj_w, embs = state["final_proj.weight"], state["label_embs_concat"]
        if proj_w.shape[0] == embs.shape[1]:  # one label set (untied projections would be n * final_dim)
            clusters = ClusterHeadsConfig(dim=content.dim, num_clusters=(int(embs.shape[0]),),
                                          layers=(content.num_layers,), proj_dim=int(proj_w.shape[0]))
            head_state = {"cluster_heads.predictors.0.proj.weight": proj_w,
                          "cluster_heads.predictors.0.proj.bias": state["final_proj.bias"],
                          "cluster_heads.predictors.0.codebook": embs}
        else:
            log.info("%s: several label sets (untied final_proj); cluster heads are not imported", source)
    model = HuBERTBaseline(BaselineConfig(frontend, content, _heads_for(content, clusters)))
    mapped = _rename(state, _FAIRSEQ_RULES, source, ignore=_FAIRSEQ_HEADS)
    _load_checked(model, mapped, ("frontend.", "content."), set(), source)
    if head_state is not None:
        _load_checked(model, head_state, ("cluster_heads.",), set(), source)
    return model.eval()


# ----------------------------------------------------------------------------- 3D-Speaker RDINO

_RDINO_RULES = [
    (r"^blocks\.0\.conv\.conv\.", "encoder.tdnn.conv."),
    (r"^blocks\.0\.norm\.norm\.", "encoder.tdnn.norm."),
    (r"^blocks\.(\d+)\.(tdnn[12])\.conv\.conv\.", r"encoder.blocks.<\1>.\2.conv."),
    (r"^blocks\.(\d+)\.(tdnn[12])\.norm\.norm\.", r"encoder.blocks.<\1>.\2.norm."),
    (r"^blocks\.(\d+)\.res2net_block\.blocks\.(\d+)\.conv\.conv\.", r"encoder.blocks.<\1>.res2net.blocks.\2.conv."),
    (r"^blocks\.(\d+)\.res2net_block\.blocks\.(\d+)\.norm\.norm\.", r"encoder.blocks.<\1>.res2net.blocks.\2.norm."),
    (r"^blocks\.(\d+)\.se_block\.(conv[12])\.conv\.", r"encoder.blocks.<\1>.se.\2."),
    (r"^blocks\.(\d+)\.shortcut\.conv\.", r"encoder.blocks.<\1>.shortcut."),
    (r"^mfa\.conv\.conv\.", "encoder.pooling.mfa.conv."),
    (r"^mfa\.norm\.norm\.", "encoder.pooling.mfa.norm."),
    (r"^asp\.tdnn\.conv\.conv\.", "encoder.pooling.asp.tdnn.conv."),
    (r"^asp\.tdnn\.norm\.norm\.", "encoder.pooling.asp.tdnn.norm."),
    (r"^asp\.conv\.conv\.", "encoder.pooling.asp.conv."),
    (r"^asp_bn\.norm\.", "encoder.pooling.asp_norm."),
    (r"^fc\.conv\.", "encoder.pooling.fc."),
]


def _rdino_backbone(ckpt: Mapping[str, Any], source: str) -> tuple[dict[str, Tensor], list[str]]:
    for key in ("teacher", "student", "state_dict", "model"):  # the teacher is what 3D-Speaker infers with
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt.items()}
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise ConversionError(f"{source}: not a state dict of tensors")
    skipped: list[str] = []
    if any(k.startswith("backbone.") for k in state):
        skipped = sorted(k for k in state if not k.startswith("backbone."))
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state, skipped


def rdino_from_3dspeaker(path_or_state_dict: str | os.PathLike | Mapping[str, Any],
                         head: DINOHeadConfig | None = None, trust_pickle: bool = False) -> SpeakerModel:
    """Import 3D-Speaker's RDINO ECAPA-TDNN (``speakerlab/models/rdino/ECAPA_TDNN.py``) weights.

    Accepts the training checkpoint (``{"teacher": ..., "student": ...}``; the teacher is taken),
    a DDP state dict (``module.`` stripped) of the backbone + head wrapper (``backbone.`` kept,
    the rest, i.e. the DINO head, skipped and logged) or a bare backbone state dict. The encoder
    config (channels, blocks, kernels, scale, SE/attention widths, embedding) is read from the
    shapes; dilations are not stored and are taken as ECAPA's (2, 3, 4). The DINO head is left
    freshly initialised (``head``, default: 3D-Speaker's sizes on the imported embedding width).
    The model's front-end is the one RDINO was trained with (``encoder.frontend =
    "3dspeaker_rdino"``, :func:`jooci.features.rdino_log_mel`), so ``model(waveforms, lengths)``
    gives 3D-Speaker's features to the imported weights.

    ``.pt``/``.pth`` files are pickles: opened with ``weights_only=True``; ``trust_pickle=True``
    unpickles fully, for trusted files only.

    Raises:
        ConversionError: an unknown backbone key, a missing parameter or a shape mismatch (named).
    """
    source = str(path_or_state_dict) if not isinstance(path_or_state_dict, Mapping) else "RDINO state dict"
    ckpt = (_load_torch_file(path_or_state_dict, trust_pickle)
            if not isinstance(path_or_state_dict, Mapping) else path_or_state_dict)
    if not isinstance(ckpt, Mapping):
        raise ConversionError(f"{source}: expected a checkpoint dict, got {type(ckpt).__name__}")
    state, skipped = _rdino_backbone(ckpt, source)
    if skipped:
        log.info("%s: %d non-backbone tensors (DINO head) not imported", source, len(skipped))
    # The ECAPA's instance norm has no parameters; 3D-Speaker's is an nn.InstanceNorm1d.
    state = {k: v for k, v in state.items() if not k.startswith("instancenorm.")}
    need = ["blocks.0.conv.conv.weight", "mfa.conv.conv.weight", "asp.tdnn.conv.conv.weight", "fc.conv.weight"]
    absent = [k for k in need if k not in state]
    if absent:
        raise ConversionError(f"{source}: not a 3D-Speaker ECAPA-TDNN state dict: missing {_names(absent)}")
    keys = list(state)
    first = state["blocks.0.conv.conv.weight"]
    channels, n_mels, first_kernel = (int(s) for s in first.shape)
    n_blocks = _count_indexed(keys, r"^blocks\.(\d+)\.tdnn1\.") - 1
    if n_blocks < 1:
        raise ConversionError(f"{source}: no SE-Res2Net blocks (blocks.1.tdnn1.*)")
    r2 = state["blocks.1.res2net_block.blocks.0.conv.conv.weight"]
    scale = _count_indexed(keys, r"^blocks\.1\.res2net_block\.blocks\.(\d+)\.conv\.conv\.weight") + 1
    mfa = int(state["mfa.conv.conv.weight"].shape[0])
    att_w = state["asp.tdnn.conv.conv.weight"]
    fc = state["fc.conv.weight"]
    ecapa = EcapaConfig(
        channels=channels, num_blocks=n_blocks, first_kernel=first_kernel, kernel=int(r2.shape[2]),
        scale=scale, se_channels=int(state["blocks.1.se_block.conv1.conv.weight"].shape[0]),
        attention_channels=int(att_w.shape[0]),
        mfa_channels=None if mfa == n_blocks * channels else mfa,
        embed_dim=int(fc.shape[0]), global_context=int(att_w.shape[1]) == 3 * mfa, padding_mode="reflect")
    # 3D-Speaker trained RDINO on torchaudio's mel spectrogram, not on Kaldi fbank (method.md T33)
    enc = SpeakerEncoderConfig(n_mels=n_mels, ecapa=ecapa, frontend="3dspeaker_rdino")
    head = head if head is not None else DINOHeadConfig(in_dim=ecapa.embed_dim)
    model = SpeakerModel(SpeakerConfig(enc, head))
    mapped = _rename(state, _RDINO_RULES, source)
    mapped = {re.sub(r"<(\d+)>", lambda m: str(int(m.group(1)) - 1), k): v for k, v in mapped.items()}
    if "encoder.pooling.fc.weight" in mapped and mapped["encoder.pooling.fc.weight"].dim() == 3:
        mapped["encoder.pooling.fc.weight"] = mapped["encoder.pooling.fc.weight"][..., 0]  # 1x1 conv -> Linear
    _load_checked(model, mapped, ("encoder.",), set(), source)
    return model.eval()

"""Upstreams (a jooci model folder, a Hugging Face transformers folder, or the ``fbank`` floor) and
the on-disk feature cache.

Which upstream a ``--model`` folder is comes from its ``config.json``: a jooci folder's
(``model_type`` + ``format_version`` + ``config``: :mod:`jooci.models.folder`), or a transformers
``hubert`` / ``wavlm`` / ``wav2vec2`` config (:mod:`jooci.superb.hf`); any other folder is refused
with a one-line :class:`~jooci.superb.hf.UpstreamError` naming it and what it holds.

Features are extracted once per model with :func:`jooci.extract.extract_to_shards`
(float16, one ``.npy`` per layer) and reused by every task and every later run. The cache is
keyed by the model's fingerprint; inside, each extraction run is a *chunk*, and utterances are
looked up by ``(audio path, num_samples)``, so one file named by several manifests (VoxCeleb1's
``sid_*`` and ``asv_*`` splits) is extracted once, and a new task only extracts what is missing.

Layout::

    <cache>/<fingerprint>/upstream.json           UpstreamInfo
    <cache>/<fingerprint>/chunk_0000/paths.json   [[path, num_samples], ...] (id = row here)
    <cache>/<fingerprint>/chunk_0000/shard_00000.layerXX.npy, .len, .ids, .json, index.json
                                                  (a jooci.store folder)

A chunk is written in shards of :data:`SHARD_UTTERANCES` utterances, each finished (renamed into
place, index last) before the next begins, so an extraction killed part-way keeps its finished
shards: the next run reads them and extracts only the rest. Tasks read features through
:meth:`FeatureBank.read`, with file I/O rather than through memory maps (the bank opens its
shards unmapped: no file stays open, however many shards), so the process holds the batches it
builds and nothing of the cache it has walked (``docs/evaluation.md``, memory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from jooci.data.manifest import Utterance
from jooci.extract import extract_to_shards
from jooci.features import log_mel
from jooci.fileio import atomic_write_json
from jooci.models.outputs import FeatureOutput
from jooci.store import INDEX, IncompleteShardError, Shard, StoreError, open_shard, open_store, shard_info
from jooci.superb.featurizer import UpstreamInfo, layer_names

log = logging.getLogger(__name__)

FBANK = "fbank"
CACHE_VERSION = 1
SHARD_UTTERANCES = 256  # per cache shard: what an interrupted extraction loses at most


class FbankUpstream(nn.Module):
    """The SUPERB FBANK floor: 80-d Kaldi log-mel at 50 Hz (the CNN's frames exactly), no learning,
    one "layer". Not normalised per utterance: per-utterance CMVN zeroes every utterance's mean,
    so mean-pooled heads (SID, ER) would see nothing but zeros (SUPERB's FBANK SID accuracy of
    ~0 % has this look); the heads cope with the log-mel scale themselves."""

    def __init__(self) -> None:
        super().__init__()
        # extract_to_shards finds the device through a parameter; fbank has none of its own.
        self.device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> FeatureOutput:
        """(B, S) -> one (B, T, 80) state; T as the wav2vec2 CNN would give."""
        x, n = log_mel(waveforms.cpu(), lengths.cpu() if lengths is not None else None, rate=50)
        pad = torch.arange(x.shape[1])[None] >= n[:, None]
        x, n, pad = x.to(waveforms.device), n.to(waveforms.device), pad.to(waveforms.device)
        return FeatureOutput([x], [x], [], n, pad, None)


def load_upstream(model: str | os.PathLike | nn.Module, device: str = "cpu") -> tuple[nn.Module, UpstreamInfo, str]:
    """The upstream to evaluate, its description and its cache fingerprint.

    Args:
        model: ``"fbank"``, a jooci model folder, a transformers folder (:mod:`jooci.superb.hf`),
            or a loaded JOOCI / HuBERTBaseline module.

    Raises:
        UpstreamError: a folder that is neither a jooci nor a supported transformers folder.
        jooci.hub.CheckpointError: a jooci folder that cannot be loaded.
    """
    if isinstance(model, str) and model == FBANK:
        info = UpstreamInfo(FBANK, FBANK, ("fbank",), 1, 0, 80, 0)
        return FbankUpstream().to(device), info, f"fbank-v{CACHE_VERSION}-raw"
    if isinstance(model, nn.Module):
        module, name = model, type(model).__name__
        h = hashlib.blake2b(digest_size=12)
        for k, v in sorted(module.state_dict().items()):  # weights and BatchNorm statistics
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        fingerprint = f"{getattr(module, 'model_type', name)}-{h.hexdigest()}"
    else:
        d = Path(model)
        hf = _hf_folder(d)
        if hf is not None:
            return _load_hf_upstream(hf, device)
        from jooci.hub import CONFIG_NAME, WEIGHTS_NAME, load

        module, name = load(d, map_location=device), d.name
        w = d / WEIGHTS_NAME
        h = hashlib.blake2b(digest_size=12)
        h.update((d / CONFIG_NAME).read_bytes())
        st = w.stat()
        h.update(f"{w.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        fingerprint = f"{module.model_type}-{h.hexdigest()}"
    module.eval()
    with torch.inference_mode():  # counts and width from one short dummy input
        out = module.extract_features(torch.zeros(1, 1600, device=next(module.parameters()).device),
                                      torch.tensor([1600], device=next(module.parameters()).device))
    n_c, n_o = len(out.content_states), len(out.other_states)
    upstream = getattr(module, "upstream_modules", None)
    parts = upstream().values() if upstream else [module]
    n_params = sum(p.numel() for part in parts for p in part.parameters())
    info = UpstreamInfo(str(name), str(getattr(module, "model_type", type(module).__name__)),
                        tuple(layer_names(n_c, n_o)), n_c, n_o, int(out.hidden_states[0].shape[-1]), n_params)
    return module, info, fingerprint


def _hf_folder(d: Path):
    """The transformers folder at ``d``; None for a jooci folder or an unreadable config.json (left
    to :func:`jooci.hub.load`, whose errors name what is wrong with it).

    Raises:
        UpstreamError: neither kind of folder, or a transformers folder that cannot be evaluated.
    """
    from jooci.superb.hf import HF_MODEL_CLASSES, describe, inspect_folder, is_jooci_config, read_json_object

    hf = inspect_folder(d)
    if hf is not None:
        return hf
    config = d / "config.json"
    meta = read_json_object(config) if config.is_file() else None
    if meta is not None and is_jooci_config(meta):
        return None
    from jooci.hub import MODEL_TYPES
    from jooci.superb.hf import UpstreamError  # a ValueError: the CLI reports it on one line

    kinds = (f"a jooci model folder ({'/'.join(MODEL_TYPES)}) nor a Hugging Face transformers folder "
             f"({'/'.join(HF_MODEL_CLASSES)})")
    if not config.is_file():
        raise UpstreamError(f"{d}: no config.json: neither {kinds}; {describe(d)}")
    if meta is None:
        return None  # unreadable JSON: jooci.hub.load names the parse error
    raise UpstreamError(f"{d}: neither {kinds}: its config.json has model_type {meta.get('model_type')!r}; "
                        f"{describe(d)}")


def _load_hf_upstream(hf, device: str) -> tuple[nn.Module, UpstreamInfo, str]:
    from jooci.superb.hf import fingerprint, load_hf

    module = load_hf(hf, device)
    dev = next(module.parameters()).device
    with torch.inference_mode():  # counts and width from one short dummy input
        out = module.extract_features(torch.zeros(1, 1600, device=dev), torch.tensor([1600], device=dev))
    n = len(out.hidden_states)
    info = UpstreamInfo(hf.path.name, hf.kind, tuple(f"L{i}" for i in range(n)), 0, 0,
                        int(out.hidden_states[0].shape[-1]), sum(p.numel() for p in module.parameters()),
                        hf.reading())
    return module, info, fingerprint(hf)


class FeatureBank:
    """Cached hidden states of one upstream, looked up by utterance.

    ``read(utt)`` -> ``(L, T, D)`` float16 (L = the layers asked for), read from the shards' files.
    Finished shards are used wherever they are: in a finished chunk, or in one whose extraction
    was cut short. Chunks from another format version are ignored (and removed by the next
    :func:`extract_missing`).
    """

    def __init__(self, root: Path, layers: Sequence[int]):
        self.root, self.layers = root, list(layers)
        self._where: dict[tuple[str, int], tuple[Shard, int]] = {}  # key -> (shard, row)
        for chunk in sorted(root.glob("chunk_*")):
            shards = _chunk_shards(chunk, self.layers)
            if not shards:
                continue
            paths = json.loads((chunk / "paths.json").read_text())
            for shard in shards:
                for row, uid in enumerate(shard.ids):
                    p, ns = paths[int(uid)]
                    self._where[(p, int(ns))] = (shard, row)

    def __contains__(self, utt: Utterance) -> bool:
        return (utt.path, utt.num_samples) in self._where

    def __len__(self) -> int:
        return len(self._where)

    def read(self, utt: Utterance, start: int = 0, stop: int | None = None,
             which: Sequence[int] | None = None) -> np.ndarray:
        """(L, t, D) float16 features of ``utt``, frames ``start:stop`` (default all); ``which``:
        positions in the bank's layers to read (default all of them)."""
        shard, row = self._where[(utt.path, utt.num_samples)]
        layers = self.layers if which is None else [self.layers[i] for i in which]
        return np.stack([shard.read(row, i, start, stop) for i in layers])

    def num_frames(self, utt: Utterance) -> int:
        shard, row = self._where[(utt.path, utt.num_samples)]
        return int(shard.lengths[row])


def _chunk_shards(chunk: Path, layers: Sequence[int]) -> list[Shard]:
    """The finished shards of a cache chunk: all of a finished chunk's, or those an extraction cut
    short had finished; [] for a chunk that is not a cache chunk of this version."""
    if not (chunk / "paths.json").is_file():
        return []
    try:
        return open_store(chunk, layers, mapped=False).shards
    except IncompleteShardError:
        pass  # cut short: its finished shards below
    except StoreError as e:
        log.warning("%s: ignoring a cache chunk that does not open (%s); it will be extracted again", chunk, e)
        return []
    shards = []
    for index in sorted(chunk.glob("shard_*.json")):
        prefix = index.with_suffix("")
        if shard_info(prefix) is None:
            continue
        try:
            shards.append(open_shard(prefix, layers, mapped=False))
        except StoreError as e:
            log.warning("%s: ignoring a cache shard that does not open (%s); it will be extracted again", prefix, e)
    return shards


def extract_missing(module: nn.Module, info: UpstreamInfo, root: Path, utterances: Sequence[Utterance],
                    batch_seconds: float = 60.0, progress: bool = True, max_skipped: float = 0.05) -> int:
    """Extract the utterances the cache under ``root`` lacks (all layers) into a new chunk.

    Returns the number extracted. Unreadable files are skipped by ``extract_to_shards`` (logged,
    fatal past ``max_skipped`` of the utterances: :class:`jooci.store.TooManySkippedError`); they
    stay missing and the tasks leave them out.
    """
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "upstream.json", asdict(info), indent=1)
    have = FeatureBank(root, [])
    todo: dict[tuple[str, int], Utterance] = {}
    for u in utterances:
        if u not in have:
            todo.setdefault((u.path, u.num_samples), u)
    if not todo:
        return 0
    # longest first: batches of similar lengths waste little on padding
    keys = sorted(todo, key=lambda k: -k[1])
    for old in root.glob("chunk_*"):  # one writer per cache folder is assumed
        if not _chunk_shards(old, []):
            shutil.rmtree(old)  # nothing finished in it, or another version
        elif not (old / INDEX).is_file():
            _drop_unfinished(old)  # cut short: its finished shards stay and are used
    k = 1 + max([int(p.name.split("_")[1]) for p in root.glob("chunk_*")], default=-1)
    chunk = root / f"chunk_{k:04d}"
    chunk.mkdir()
    atomic_write_json(chunk / "paths.json", [[p, n] for p, n in keys], indent=None)
    utts = [Utterance(id=str(i), path=todo[key].path, num_samples=todo[key].num_samples,
                      sample_rate=todo[key].sample_rate) for i, key in enumerate(keys)]
    extract_to_shards(module, utts, chunk, layers=None, batch_seconds=batch_seconds, progress=progress,
                      shard_size=SHARD_UTTERANCES, dtype="float16", max_skipped=max_skipped)
    return len(utts)


def _drop_unfinished(chunk: Path) -> None:
    """Delete what a killed extraction left of its last shard (temporary files, files of a shard
    without its index); the chunk's finished shards are kept."""
    finished = {p.with_suffix("").name for p in chunk.glob("shard_*.json") if shard_info(p.with_suffix("")) is not None}
    for f in chunk.iterdir():
        if f.name.startswith(".") and f.name.endswith(".tmp"):
            f.unlink()
        elif f.name.startswith("shard_") and f.name.split(".")[0] not in finished:
            f.unlink()

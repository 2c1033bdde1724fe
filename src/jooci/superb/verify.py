"""Speaker verification with no trained back-end: cosine scores of an utterance embedding on the
ASV trials, as RDINO and other self-supervised speaker models are reported (EER on Vox1-O by
cosine, no PLDA, no head).

It answers a question the SUPERB ASV task cannot: how much speaker information a model's *own*
embedding carries. ``jooci verify`` scores any of

- ``fbank``: the utterance's log-mel mean and standard deviation (a no-learning floor);
- a teacher folder (``RUN/teacher/final``): the RDINO speaker model's embedding;
- a JOOCI folder: its utterance embedding (the Other encoder's pooled output);
- any jooci model folder with ``layer=N``: mean and standard deviation of hidden state ``N``;

so the demo can say whether the teacher learned speakers, and how much of it the Other encoder
took over. ``--trials dev`` scores JOOCI-synth's held-out dev speakers instead of the test trials:
the list to choose a recipe on (teacher steps, augmentation) without tuning on the test.

``--probe`` adds a second view of the same embedding: a linear SID probe on the seen speakers
(:func:`sid_probe`). Cosine EER on unseen speakers and a trained probe on seen ones can disagree.
On JOOCI-synth the log-mel statistics are a poor cosine embedding (no learned metric) but a
strong probe feature, so a teacher must beat them on the probe to add anything a SUPERB SID head
can use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from jooci.audio import SAMPLE_RATE, AudioError, load_audio, resampled_length
from jooci.data.corpora import Trial, read_trials
from jooci.data.manifest import Utterance, read_manifest
from jooci.fileio import atomic_dir, atomic_write_json
from jooci.padding import pad_waveforms
from jooci.superb.data import DataFolder, TaskDataError, check_trials, task_splits
from jooci.superb.metrics import P_TARGETS, eer, min_dcf
from jooci.superb.tasks.asv import score_trials

EmbedFn = Callable[[Tensor, Tensor], Tensor]
"""(B, S) waveforms, (B,) lengths -> (B, E) embeddings."""


@dataclass(frozen=True)
class VerifyResult:
    source: str
    eer: float
    min_dcf: dict[str, float]
    num_trials: int
    num_utterances: int
    test_speakers: int = 0  # speakers the trials name
    # 95 % interval of the EER by a two-way bootstrap over those speakers (as the ASV task's
    # ``ci95_speakers``); None below MIN_SPEAKER_CLUSTERS speakers or when not asked for
    ci95_speakers: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        d = {"source": self.source, "eer": self.eer, "min_dcf": self.min_dcf, "num_trials": self.num_trials,
             "num_utterances": self.num_utterances, "test_speakers": self.test_speakers}
        if self.ci95_speakers is not None:
            d["ci95_speakers"] = list(self.ci95_speakers)
        return d


def mean_std_pool(h: Tensor, frames: Tensor) -> Tensor:
    """(B, T, D), (B,) -> (B, 2D) masked mean and standard deviation over time."""
    keep = (torch.arange(h.shape[1], device=h.device)[None, :] < frames[:, None]).to(h.dtype)[..., None]
    n = keep.sum(1).clamp_min(1)
    mean = (h * keep).sum(1) / n
    std = (((h - mean[:, None]) ** 2 * keep).sum(1) / n).clamp_min(1e-8).sqrt()
    return torch.cat([mean, std], dim=-1)


def fbank_embedder() -> EmbedFn:
    from jooci.features import log_mel

    def embed(wav: Tensor, lengths: Tensor) -> Tensor:
        mel, frames = log_mel(wav, lengths, rate=100)
        return mean_std_pool(mel, frames.to(mel.device))

    return embed


def teacher_embedder(folder: str | os.PathLike, device: str = "cpu") -> EmbedFn:
    """The speaker model a teacher phase wrote (its encoder's embedding, before the DINO head)."""
    from jooci.models.speaker import load_speaker_folder

    model = load_speaker_folder(folder, map_location=device)[0]

    def embed(wav: Tensor, lengths: Tensor) -> Tensor:
        return model(wav.to(device), lengths.to(device)).embedding

    return embed


def teacher_targets(folder: str | os.PathLike, data: str | os.PathLike, *, temp: float = 0.04,
                    utterances: int = 64, seconds: float = 4.0, device: str = "cpu") -> dict:
    """What a teacher gives JOOCI's phases 1-2 to distil: its DINO distribution (prototype logits
    minus the centre it finished with, over ``temp``, softmax), on the first ``utterances`` of the
    SID dev split, first ``seconds`` of each.

    Returns {"entropy": mean nats, "uniform": ln(number of prototypes), "top_prob": mean largest
    probability, "num_utterances"}. An entropy near ``uniform`` leaves the distillation little to
    carry over.

    Raises:
        TaskDataError: ``data`` has no SID splits.
    """
    import math

    from jooci.models.speaker import load_speaker_folder

    utts = task_splits("sid", DataFolder(data)).dev[:utterances]
    if not utts:
        raise ValueError(f"{data}: no dev utterances to read the teacher's targets on")
    model, center = load_speaker_folder(folder, map_location=device)
    k = model.cfg.head.out_dim
    center = (center if center is not None else torch.zeros(k)).to(device)
    entropy, top = [], []
    for u in utts:
        wav = torch.from_numpy(load_audio(u.path))[None, :int(seconds * SAMPLE_RATE)]
        with torch.no_grad():
            logits = model(wav.to(device), torch.tensor([wav.shape[1]], device=device)).head.logits
        p = torch.softmax((logits.float() - center) / temp, dim=-1)
        entropy.append(float(-(p * p.clamp_min(1e-12).log()).sum()))
        top.append(float(p.max()))
    return {"entropy": round(float(np.mean(entropy)), 3), "uniform": round(math.log(k), 3),
            "top_prob": round(float(np.mean(top)), 4), "num_utterances": len(utts)}


def model_embedder(folder: str | os.PathLike, layer: int | None = None, device: str = "cpu") -> EmbedFn:
    """A jooci model's utterance embedding (``layer`` None; JOOCI only), or mean+std of a hidden state."""
    from jooci import hub

    model = hub.load(folder, map_location=device).eval()

    def embed(wav: Tensor, lengths: Tensor) -> Tensor:
        out = model.extract_features(wav.to(device), lengths.to(device))
        if layer is None:
            if out.embedding is None:
                raise ValueError(f"{folder}: this model has no utterance embedding; pick a hidden state with layer=N")
            return out.embedding
        if not 0 <= layer < len(out.hidden_states):
            raise ValueError(f"{folder}: layer {layer} asked for, the model has 0..{len(out.hidden_states) - 1}")
        return mean_std_pool(out.hidden_states[layer].float(), out.lengths)

    return embed


def embedder(source: str, layer: int | None = None, device: str = "cpu") -> EmbedFn:
    """``fbank``, a teacher folder or a jooci model folder (see the module docstring)."""
    if source == "fbank":
        return fbank_embedder()
    meta_path = Path(source) / "config.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{source}: not 'fbank' and no config.json there (a model or teacher folder)")
    model_type = json.loads(meta_path.read_text()).get("model_type")
    if model_type == "speaker":
        if layer is not None:
            raise ValueError(f"{source}: a teacher has no hidden-state layers to choose; drop layer")
        return teacher_embedder(source, device)
    return model_embedder(source, layer, device)


def _load_as_listed(utt: Utterance) -> np.ndarray:
    """:func:`load_audio`, refusing a file that is not as long as its manifest record says (the
    manifest then describes other audio: its trials are not to be trusted)."""
    wav = load_audio(utt.path)
    expected = resampled_length(utt.num_samples, utt.sample_rate)
    if len(wav) != expected:
        raise AudioError(utt.path, f"holds {len(wav)} samples at {SAMPLE_RATE} Hz, the manifest's num_samples "
                                   f"{utt.num_samples} at {utt.sample_rate} Hz make {expected} (utterance {utt.id!r})")
    return wav


@torch.no_grad()
def embed_utterances(embed: EmbedFn, utts: list[Utterance], batch_seconds: float = 32.0) -> dict[str, Tensor]:
    """{id: (E,) float32 CPU embedding}, batching utterances of similar length."""
    out: dict[str, Tensor] = {}
    order = sorted(utts, key=lambda u: u.num_samples)
    i = 0
    while i < len(order):
        group = [order[i]]
        while i + len(group) < len(order) and (len(group) + 1) * order[i + len(group)].num_samples <= batch_seconds * SAMPLE_RATE:
            group.append(order[i + len(group)])
        batch, lengths = pad_waveforms([_load_as_listed(u) for u in group])
        emb = embed(batch, lengths).float().cpu()
        out.update({u.id: emb[j] for j, u in enumerate(group)})
        i += len(group)
    return out


DEV_MANIFEST, DEV_TRIALS = "heldout_dev.jsonl", "trials_dev.txt"


def trial_set(data: str | os.PathLike, which: str = "test") -> tuple[list[Trial], list[Utterance]]:
    """The trials and the utterances they name: ``test`` (the ASV test trials, what the reports
    quote) or ``dev`` (JOOCI-synth's held-out dev speakers, ``trials_dev.txt`` over
    ``heldout_dev.jsonl``: speakers no model trains on and no test trial names, for choosing a
    recipe without looking at the test trials)."""
    if which == "test":
        splits = task_splits("asv", DataFolder(data))
        trials, pool = splits.trials, splits.test
    elif which == "dev":
        root = Path(data)
        manifest, trial_file = root / DEV_MANIFEST, root / DEV_TRIALS
        if not manifest.is_file() or not trial_file.is_file():
            raise TaskDataError(f"{root}: dev trials need {DEV_MANIFEST} and {DEV_TRIALS} (a JOOCI-synth corpus "
                                "with held-out dev speakers: jooci synth --dev-heldout-fraction > 0)")
        pool, trials = read_manifest(manifest), read_trials(trial_file)
        check_trials(trials, pool, str(trial_file), str(manifest))
    else:
        raise ValueError(f"trials must be 'test' or 'dev', got {which!r}")
    named = {x for _, a, b in trials for x in (a, b)}
    return trials, [u for u in pool if u.id in named]


def verify(source: str, data: str | os.PathLike, *, layer: int | None = None, device: str = "cpu",
           label: str | None = None, trials: str = "test", speaker_interval: bool = False) -> VerifyResult:
    """Cosine-scored EER and minDCF of ``source``'s embedding on the ``trials`` (test or dev, see
    :func:`trial_set`) in ``data``; with ``speaker_interval``, also the EER's 95 % interval by a
    two-way bootstrap over the trials' speakers (1,000 draws; from MIN_SPEAKER_CLUSTERS speakers on)."""
    from jooci.superb.metrics import cluster_bootstrap_interval
    from jooci.superb.tasks.asv import MIN_SPEAKER_CLUSTERS

    trial_list, utts = trial_set(data, trials)
    emb = embed_utterances(embedder(source, layer, device), utts)
    scores, labels = score_trials(emb, trial_list)
    if not np.isfinite(scores).all():
        raise ValueError(f"{source}: non-finite embeddings (a collapsed or broken model?)")
    name = label or (f"{source} layer {layer}" if layer is not None else source)
    speaker_of = {u.id: u.speaker for u in utts}
    pairs = [(speaker_of[a], speaker_of[b]) for _, a, b in trial_list]
    n_speakers = len({s for p in pairs for s in p})
    interval = None
    if speaker_interval and n_speakers >= MIN_SPEAKER_CLUSTERS:
        items = [[float(x), int(y)] for x, y in zip(scores.tolist(), labels.tolist())]
        interval = tuple(round(v, 3) for v in cluster_bootstrap_interval("eer", items, pairs))
    return VerifyResult(name, round(eer(scores, labels), 3),
                        {str(p): round(min_dcf(scores, labels, p), 4) for p in P_TARGETS}, len(labels), len(utts),
                        n_speakers, interval)


PROBE_C = (0.01, 0.1, 1.0, 10.0)


def sid_probe(source: str, data: str | os.PathLike, *, layer: int | None = None, device: str = "cpu") -> dict:
    """Linear SID probe on ``source``'s utterance embedding over the SID splits of ``data``.

    The embedding is standardised (statistics of the train split), then fitted by a multinomial
    logistic regression on the SID train split. Its inverse regularisation C is chosen from
    :data:`PROBE_C` by dev accuracy. Deterministic (lbfgs).

    Returns:
        {"dev": accuracy %, "test": accuracy %, "C": the chosen C, "num_train", "num_test"}.

    Raises:
        TaskDataError: ``data`` has no SID splits.
    """
    splits = task_splits("sid", DataFolder(data))
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    emb = embed_utterances(embedder(source, layer, device), [u for p in parts.values() for u in p])
    x = {n: torch.stack([emb[u.id] for u in p]).double().numpy() for n, p in parts.items()}
    if not all(np.isfinite(v).all() for v in x.values()):
        raise ValueError(f"{source}: non-finite embeddings (a collapsed or broken model?)")
    y = {n: np.array([u.speaker for u in p]) for n, p in parts.items()}
    return {**linear_probe(x, y), "num_train": len(parts["train"]), "num_test": len(parts["test"])}


def linear_probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict:
    """Standardise on ``x["train"]``, fit a logistic regression per C in :data:`PROBE_C`, keep the
    best on dev. ``x``/``y``: {"train", "dev", "test"} -> (N, D) features / (N,) labels.
    Returns {"dev": accuracy %, "test": accuracy %, "C"}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x["train"])
    x = {n: scaler.transform(v) for n, v in x.items()}
    best = None
    for c in PROBE_C:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        dev = float(np.mean(clf.predict(x["dev"]) == y["dev"]))
        if best is None or dev > best[0]:
            best = (dev, c, clf)
    dev, c, clf = best
    return {"dev": round(100 * dev, 2), "test": round(100 * float(np.mean(clf.predict(x["test"]) == y["test"])), 2),
            "C": c}


def untrained_speaker_folder(like: str | os.PathLike, out: str | os.PathLike, seed: int = 0) -> Path:
    """An untrained teacher of ``like``'s architecture (a teacher folder), initialised from ``seed``
    (not the teacher phase's own initialisation, which seeds each rank differently),
    written to ``out`` (kept if it is already there with that architecture and seed). The
    reference that says how much a teacher's training gave it: a randomly initialised network
    already separates speakers by their spectra. Returns ``out`` as a Path.

    Raises:
        ValueError: ``like`` holds no speaker model.
        jooci.models.folder.CheckpointError: ``like`` is no model folder.
    """
    from jooci.configio import from_dict as config_from_dict, to_dict as config_to_dict
    from jooci.models.folder import read_config
    from jooci.models.speaker import SpeakerConfig, SpeakerModel

    like, out = Path(like), Path(out)
    meta = read_config(like)
    if meta["model_type"] != SpeakerModel.model_type:
        raise ValueError(f"{like}: not a speaker (teacher) model folder (model_type {meta['model_type']!r})")
    cfg = config_from_dict(SpeakerConfig, meta["config"])
    mark = out / "untrained.json"
    want = {"like": str(like), "seed": seed, "config": config_to_dict(cfg)}
    if mark.is_file() and json.loads(mark.read_text()) == want and (out / "model.safetensors").is_file():
        return out
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SpeakerModel(cfg).eval()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "untrained.json", want, indent=1)
    return out


def untrained_reference(source: str, out: str | os.PathLike, seed: int = 0) -> str:
    """An untrained counterpart of ``source`` (a folder ``embedder`` reads), written to ``out``: a
    teacher folder's architecture initialised from ``seed``, or a jooci model with its Other
    encoder so initialised (frontend and Content kept: the embedding is the Other encoder's)."""
    from jooci import hub
    from jooci.models.jooci import JOOCI, with_untrained_other

    meta_path = Path(source) / "config.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{source}: no config.json there (a model or teacher folder)")
    kind = json.loads(meta_path.read_text()).get("model_type")
    if kind == "speaker":
        return str(untrained_speaker_folder(source, out, seed=seed))
    if kind != JOOCI.model_type:
        raise ValueError(f"{source}: a {kind or 'untyped'} folder has no untrained reference "
                         "(--untrained needs a teacher or a jooci model folder)")
    model = hub.load(source)
    hub.save_pretrained(with_untrained_other(model, seed), out)
    return str(out)


def verify_models(models: list[str], data: str | os.PathLike, *, trials: str = "test", probe: bool = False,
                  untrained: bool = False, seed: int = 0, device: str = "cpu",
                  speaker_interval: bool = False) -> list[tuple[VerifyResult, dict | None]]:
    """:func:`verify` for each of ``models`` (``"fbank"``, a folder, or ``FOLDER:N`` for hidden
    state N), each with its SID probe (:func:`sid_probe`) when ``probe``; with ``untrained``, each
    model that has one is followed by its untrained reference (:func:`untrained_reference`,
    initialised from ``seed``); ``speaker_interval`` as in :func:`verify`. Returns (result, probe or
    None) per scored embedding, in order."""
    import tempfile

    specs = []  # (label, source, layer)
    out = []
    with tempfile.TemporaryDirectory(prefix="jooci-verify-") as scratch:
        for spec in models:
            source, layer = spec, None
            if spec != "fbank" and ":" in spec and spec.rsplit(":", 1)[1].isdigit():
                source, n = spec.rsplit(":", 1)
                layer = int(n)
            specs.append((spec, source, layer))
            if untrained and source != "fbank":
                ref = untrained_reference(source, Path(scratch) / str(len(specs)), seed)
                specs.append((f"untrained {spec} (seed {seed})", ref, layer))
        for spec, source, layer in specs:
            result = verify(source, data, layer=layer, device=device, label=spec, trials=trials,
                            speaker_interval=speaker_interval)
            out.append((result, sid_probe(source, data, layer=layer, device=device) if probe else None))
    return out

"""JOOCI-synth: labelled speech generated on the spot, so the whole pipeline runs with no download.

What is said, who says it and how are all controlled, so Content (phones, words) and Other
(speaker, style) can be measured separately:

- text from the seeded grammar in :mod:`jooci.data.synth.grammar`;
- speakers = English accent × espeak voice variant × base pitch × base rate;
- four speaking styles (neutral, happy, sad, angry) from rate, pitch, pitch range and volume;
- ARPAbet-39 phone alignments in samples, from espeak's own phoneme events;
- low-level noise, because espeak writes exact digital zeros in pauses;
- with ``sessions`` (format 3): every speaker a voice of its own from continuous traits
  (:mod:`jooci.data.synth.voices`), recorded in several sessions, each with its own room,
  microphone, band and noise (:mod:`jooci.data.synth.channel`) and a small drift of pitch and rate;
  a seen speaker's last sessions are its test sessions, so SID is tested on sessions it never
  trained on. Each utterance names its session (``session`` in the manifest);
- splits: pretrain / train / dev / test over "seen" speakers, plus held-out speakers whose
  utterances are in ``test`` only and make up the ASV trial list, plus a second, smaller group of
  held-out speakers (``heldout_dev``, with ``trials_dev.txt``): speakers no model trains on and no
  test trial names, for choosing a speaker-model recipe without looking at the test trials.

Reproducibility. Everything but the audio is planned up front from the seed: ids, texts,
speakers, styles and the espeak seed of every utterance. Utterances are grouped into fixed shards
and each shard is synthesised in a fresh process in a fixed order (espeak keeps state across
utterances), so the same seed gives the same manifests whatever the number of workers.

It is formant synthesis, far from real speech: numbers on it show that the pipeline works and
whether JOOCI's claims hold in a controlled setting, not what LibriSpeech would give.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from jooci.audio import SAMPLE_RATE
from jooci.data.corpora import write_trials
from jooci.data.manifest import Utterance, write_manifest
from jooci.data.synth import grammar
from jooci.data.synth.channel import Channel, apply_channel, draw_channel, room_impulse_responses
from jooci.data.synth.espeak import Espeak, PhonemeEvent, ipa_to_arpabet, start_method
from jooci.data.synth.voices import VoiceTraits, draw_traits, voice_data
from jooci.fileio import atomic_write_text

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the held-out dev speakers (heldout_dev.jsonl, trials_dev.txt)
SESSIONS_FORMAT_VERSION = 3  # 3: voices from continuous traits, recording sessions (cfg.sessions > 0)
SHARD_SIZE = 40  # utterances per shard: one fresh process each, so small enough to balance load
SILENCE = "sil"
SPLITS = ("pretrain", "train", "dev", "test", "heldout_dev")

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
# espeak variants that give ordinary voiced speech (whisper, croak and the robot voices do not).
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "Annie",
            "belinda", "steph", "steph2", "steph3", "adam", "ed", "john", "linda", "max", "paul",
            "rob", "robert", "travis", "david", "ian", "quincy", "shelby", "aunty", "benjamin",
            "caleb", "michael", "klatt", "klatt2", "klatt3", "klatt4", "grandma", "grandpa")


@dataclass(frozen=True)
class Style:
    """A speaking style as changes to a speaker's base voice."""

    name: str
    rate: float  # multiplies the speaker's words per minute
    pitch: int  # added to the speaker's base pitch (0-99 scale)
    pitch_range: int  # espeak's intonation range, 0-99
    volume: int  # espeak amplitude, 0-200


STYLES = (
    Style("neutral", 1.00, 0, 50, 100),
    Style("happy", 1.12, 18, 85, 115),
    Style("sad", 0.75, -15, 15, 70),
    Style("angry", 1.20, 8, 70, 150),
)

# The k-th utterance of a seen speaker goes to SPLIT_CYCLE[k % 10]: train, test and dev come first
# so that even a speaker with three utterances is in every labelled split (SID needs that), and a
# long corpus ends up 60 / 20 / 10 / 10.
SPLIT_CYCLE = ("train", "test", "dev", "pretrain", "pretrain", "train", "pretrain", "pretrain",
               "pretrain", "pretrain")
# With sessions, a seen speaker's test utterances are those of its test sessions (a quarter to a
# half of its utterances); the others cycle through train, dev and pretrain at 4 : 1 : 3, so that
# SID still trains on several utterances per speaker and session (format 2's cycle would give it
# two in nine).
SESSION_CYCLE = ("train", "dev", "pretrain", "train", "pretrain", "train", "pretrain", "train")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a JOOCI-synth corpus (the reuse check compares all of it)."""

    minutes: float = 10.0
    seed: int = 0
    speakers: int = 48
    heldout_fraction: float = 0.2  # speakers kept out of every split but test, for ASV trials
    # speakers kept out of every split but heldout_dev, for dev trials (0: none, and the corpus is
    # the one format 1 made)
    dev_heldout_fraction: float = 0.1
    audio_format: str = "wav"  # "wav" or "flac" (16-bit PCM either way)
    noise_db: float = -70.0  # level of the added Gaussian noise, dB re full scale
    max_trials: int = 20000
    # recording sessions per speaker (format 3); 0: format 2's corpus, one clean setting for all
    sessions: int = 0
    rooms: int = 64  # simulated impulse responses the sessions draw their rooms from
    telephone_fraction: float = 0.2  # sessions recorded through a telephone band
    # a seen speaker's sessions that are its test sessions (0: a quarter, at least one)
    test_sessions: int = 0

    def validate(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.speakers < 4:
            raise ValueError(f"need at least 4 speakers (2 seen, 2 held out), got {self.speakers}")
        if self.sessions == 0 and self.speakers > len(ACCENTS) * len(VARIANTS):
            raise ValueError(f"at most {len(ACCENTS) * len(VARIANTS)} speakers without sessions (sessions "
                             f"give every speaker a voice of its own), got {self.speakers}")
        if self.sessions < 0 or self.sessions == 1:
            raise ValueError(f"sessions must be 0 (none) or at least 2, got {self.sessions}")
        if self.test_sessions < 0 or (self.test_sessions and self.test_sessions >= max(self.sessions, 1)):
            raise ValueError(f"test_sessions must be 0 (a quarter) or 1..sessions-1 (with sessions), "
                             f"got {self.test_sessions} with sessions={self.sessions}")
        if self.sessions and self.rooms < 1:
            raise ValueError(f"rooms must be at least 1, got {self.rooms}")
        if not 0 <= self.telephone_fraction <= 1:
            raise ValueError(f"telephone_fraction must be in [0, 1], got {self.telephone_fraction}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if not 0 <= self.dev_heldout_fraction < 1:
            raise ValueError(f"dev_heldout_fraction must be in [0, 1), got {self.dev_heldout_fraction}")
        seen = self.speakers - _n_heldout(self.speakers, self.heldout_fraction) \
            - _n_heldout(self.speakers, self.dev_heldout_fraction)
        if seen < 2:
            raise ValueError(f"{self.speakers} speakers leave {seen} seen speaker(s) after the held-out groups; "
                             "need at least 2 (more speakers or smaller held-out fractions)")
        if self.audio_format not in ("wav", "flac"):
            raise ValueError(f"audio_format must be 'wav' or 'flac', got {self.audio_format!r}")


@dataclass(frozen=True)
class Speaker:
    id: str
    accent: str
    variant: str
    pitch: int  # base pitch, 0-99
    rate: int  # base rate, words per minute
    heldout: bool  # test speakers: in test.jsonl and trials.txt only
    heldout_dev: bool = False  # dev speakers: in heldout_dev.jsonl and trials_dev.txt only
    traits: VoiceTraits | None = None  # format 3: the speaker's own variant (``variant`` names it)

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    def to_json(self) -> dict:
        d = asdict(self)
        if d["traits"] is None:
            del d["traits"]  # format 2's speakers.json as it was
        return d


@dataclass(frozen=True)
class Session:
    """One recording setting of one speaker (format 3): a channel, a drift of the voice, and
    whether it is one of the speaker's test sessions."""

    id: str
    speaker: str
    test: bool
    pitch_shift: int  # added to espeak's pitch parameter (0-99 scale)
    rate_factor: float  # multiplies the words per minute
    channel: Channel


@dataclass(frozen=True)
class Talker:
    """One other voice in an utterance's babble noise."""

    speaker: Speaker
    words: tuple[str, ...]
    seed: int
    rate: int


@dataclass(frozen=True)
class PlannedUtterance:
    """Everything about an utterance that is fixed before any audio exists."""

    index: int
    id: str
    speaker: Speaker
    style: Style
    words: tuple[str, ...]
    split: str
    seed: int  # espeak's and the noise generator's seed
    rate: int
    pitch: int
    session: Session | None = None
    babble: tuple[Talker, ...] = ()


class SynthError(Exception):
    """A corpus folder that cannot be (re)used as asked."""


# ---------------------------------------------------------------------------------------------
# Planning: pure functions of the config.


def _n_heldout(speakers: int, fraction: float) -> int:
    """Speakers in a held-out group: at least 2 (a trial list needs two), none for fraction 0."""
    return 0 if fraction == 0 else max(2, round(speakers * fraction))


def plan_speakers(cfg: SynthConfig) -> list[Speaker]:
    """Speakers spread evenly over the accents, each with its own variant, pitch and rate."""
    rng = random.Random(f"speakers/{cfg.seed}")
    variants = {a: rng.sample(VARIANTS, len(VARIANTS)) for a in ACCENTS}
    heldout = set(rng.sample(range(cfg.speakers), _n_heldout(cfg.speakers, cfg.heldout_fraction)))
    # the dev group from a stream of its own, so that the rest of the plan is what it was before
    # there was a dev group (dev_heldout_fraction=0 gives format 1's corpus)
    rest = [i for i in range(cfg.speakers) if i not in heldout]
    dev = set(random.Random(f"dev-speakers/{cfg.seed}").sample(rest, _n_heldout(cfg.speakers, cfg.dev_heldout_fraction)))
    speakers = []
    if cfg.sessions:  # format 3: a voice of its own per speaker, from continuous traits
        voices = random.Random(f"voices/{cfg.seed}")
        for i in range(cfg.speakers):
            speakers.append(Speaker(id=f"spk{i:03d}", accent=ACCENTS[i % len(ACCENTS)], variant=f"jooci{i:04d}",
                                    pitch=50, rate=voices.randint(135, 200), heldout=i in heldout,
                                    heldout_dev=i in dev, traits=draw_traits(voices)))
        return speakers
    for i in range(cfg.speakers):
        accent = ACCENTS[i % len(ACCENTS)]
        speakers.append(Speaker(id=f"spk{i:03d}", accent=accent, variant=variants[accent][i // len(ACCENTS)],
                                pitch=rng.randint(25, 75), rate=rng.randint(145, 195), heldout=i in heldout,
                                heldout_dev=i in dev))
    return speakers


def n_test_sessions(sessions: int, test_sessions: int = 0) -> int:
    """How many of a seen speaker's sessions are test sessions: ``test_sessions`` when set, else a
    quarter, at least one."""
    return test_sessions or max(1, round(sessions / 4))


def plan_sessions(cfg: SynthConfig, speakers: list[Speaker]) -> dict[str, list[Session]]:
    """Every speaker's ``cfg.sessions`` sessions (format 3): a channel each (its room from the pool
    of ``cfg.rooms``), a pitch shift of -4..4 and a rate factor of 0.95-1.05; a seen speaker's
    last :func:`n_test_sessions` sessions are its test sessions."""
    rng = np.random.default_rng([cfg.seed, 0x5E55])
    out: dict[str, list[Session]] = {}
    n_test = n_test_sessions(cfg.sessions, cfg.test_sessions)
    for spk in speakers:
        out[spk.id] = [Session(id=f"{spk.id}-s{j}", speaker=spk.id,
                               test=not (spk.heldout or spk.heldout_dev) and j >= cfg.sessions - n_test,
                               pitch_shift=int(rng.integers(-4, 5)), rate_factor=round(float(rng.uniform(0.95, 1.05)), 3),
                               channel=draw_channel(rng, cfg.rooms, telephone_fraction=cfg.telephone_fraction))
                       for j in range(cfg.sessions)]
    return out


class Planner:
    """Deals out utterances: round-robin over speakers, styles and splits balanced per speaker.

    ``take(n)`` continues where the last call stopped, so a corpus can be extended until it
    reaches its target duration and still be the same for the same seed.
    """

    def __init__(self, cfg: SynthConfig, speakers: list[Speaker]):
        self.cfg, self.speakers = cfg, speakers
        self._rng = random.Random(f"utterances/{cfg.seed}")
        self._order = self._rng.sample(speakers, len(speakers))
        self._style_offset = {s.id: self._rng.randrange(len(STYLES)) for s in speakers}
        self._count: Counter[str] = Counter()
        self._train_count: Counter[str] = Counter()  # format 3: utterances outside test sessions
        self.sessions = plan_sessions(cfg, speakers) if cfg.sessions else {}
        self.next_index = 0

    def take(self, n: int) -> list[PlannedUtterance]:
        out = []
        for _ in range(n):
            i = self.next_index
            spk = self._order[i % len(self._order)]
            if i % len(self._order) == len(self._order) - 1:  # a new round: new speaker order
                self._order = self._rng.sample(self.speakers, len(self.speakers))
            k = self._count[spk.id]
            self._count[spk.id] += 1
            style = STYLES[(self._style_offset[spk.id] + k) % len(STYLES)]
            rng = self._rng
            words = tuple(grammar.sentence(rng))
            if self.sessions:
                out.append(self._in_session(i, spk, k, style, words))
                self.next_index += 1
                continue
            # Small per-utterance jitter so no two utterances of a speaker and style are identical.
            rate = round(spk.rate * style.rate * rng.uniform(0.95, 1.05))
            pitch = min(99, max(0, spk.pitch + style.pitch + rng.randint(-3, 3)))
            out.append(PlannedUtterance(
                index=i, id=f"{spk.id}-{i:06d}", speaker=spk, style=style, words=words,
                split="test" if spk.heldout else "heldout_dev" if spk.heldout_dev else SPLIT_CYCLE[k % len(SPLIT_CYCLE)],
                seed=rng.randrange(1, 2**31 - 1), rate=rate, pitch=pitch))
            self.next_index += 1
        return out

    def _in_session(self, i: int, spk: Speaker, k: int, style: Style, words: tuple[str, ...]) -> PlannedUtterance:
        """Format 3: the k-th utterance of ``spk`` goes to its session ``(k // 4) % sessions``; its split
        follows the session (test sessions: test) and SESSION_CYCLE otherwise; babble talkers are
        drawn for babble sessions."""
        rng = self._rng
        # sessions change every len(STYLES) utterances, so every session holds every style (k % S
        # would tie a style to a session whenever S and the style count share a factor)
        session = self.sessions[spk.id][(k // len(STYLES)) % self.cfg.sessions]
        rate = round(spk.rate * style.rate * session.rate_factor * rng.uniform(0.97, 1.03))
        pitch = min(99, max(0, spk.pitch + style.pitch + session.pitch_shift + rng.randint(-3, 3)))
        if spk.heldout:
            split = "test"
        elif spk.heldout_dev:
            split = "heldout_dev"
        elif session.test:
            split = "test"
        else:
            split = SESSION_CYCLE[self._train_count[spk.id] % len(SESSION_CYCLE)]
            self._train_count[spk.id] += 1
        babble: tuple[Talker, ...] = ()
        if session.channel.noise == "babble":  # other voices of the corpus, from a stream of their own
            b = random.Random(f"babble/{self.cfg.seed}/{i}")
            # seen speakers only: a held-out voice must not reach training audio or other trials
            others = [s for s in self.speakers if s.id != spk.id and not (s.heldout or s.heldout_dev)]
            babble = tuple(Talker(o, tuple(grammar.sentence(b)), b.randrange(1, 2**31 - 1), o.rate)
                           for o in b.sample(others, min(len(others), b.randint(3, 5))))
        return PlannedUtterance(index=i, id=f"{spk.id}-{i:06d}", speaker=spk, style=style, words=words, split=split,
                                seed=rng.randrange(1, 2**31 - 1), rate=rate, pitch=pitch, session=session,
                                babble=babble)


# ---------------------------------------------------------------------------------------------
# Synthesis of one utterance and one shard (runs in a worker process).


def phone_alignment(events: list[PhonemeEvent], num_samples_in: int, num_samples_out: int) -> list[tuple[str, int, int]]:
    """espeak phoneme events (22050 Hz) -> ARPAbet segments tiling ``[0, num_samples_out)``.

    A phoneme lasts until the next event; pauses and the lead-in become ``"sil"``; a phoneme that
    maps to two ARPAbet phones (``"əl"`` -> AH L) has its span split evenly between them.
    """
    scale = num_samples_out / num_samples_in if num_samples_in else 0.0
    raw: list[tuple[str, int, int]] = []  # (phone, start, end) at the output rate
    starts = [min(max(e.sample, 0), num_samples_in) for e in events]
    first = starts[0] if starts else num_samples_in
    if first > 0:
        raw.append((SILENCE, 0, first))
    for i, ev in enumerate(events):
        start = starts[i]
        end = starts[i + 1] if i + 1 < len(events) else num_samples_in
        if end <= start:
            continue
        name = ev.name.replace("ˈ", "").replace("ˌ", "")
        phones = ipa_to_arpabet(name) if name else (SILENCE,)
        if not phones:  # a modifier such as palatalisation: belongs to the phone before
            if raw:
                raw[-1] = (raw[-1][0], raw[-1][1], end)
            else:
                raw.append((SILENCE, start, end))
            continue
        bounds = np.linspace(start, end, len(phones) + 1)
        raw += [(p, int(round(bounds[j])), int(round(bounds[j + 1]))) for j, p in enumerate(phones)]
    segments: list[tuple[str, int, int]] = []
    for phone, s, e in raw:
        s, e = min(round(s * scale), num_samples_out), min(round(e * scale), num_samples_out)
        if segments:
            s = segments[-1][2]  # tile: no gaps, no overlaps after rounding
        if e <= s:
            continue
        if segments and phone == SILENCE and segments[-1][0] == SILENCE:
            segments[-1] = (SILENCE, segments[-1][1], e)
        else:
            segments.append((phone, s, e))
    if segments and segments[-1][2] < num_samples_out:  # resampling can add a sample or two
        p, s, _ = segments[-1]
        segments[-1] = (p, s, num_samples_out)
    return segments


# The impulse-response pool of a corpus with sessions, in each worker (set by _init_worker).
_RIRS: list[np.ndarray] = []


def _init_worker(rirs: list[np.ndarray]) -> None:
    global _RIRS
    _RIRS = rirs


def _to_16k(pcm: np.ndarray) -> np.ndarray:
    return resample_poly(pcm.astype(np.float64) / 32768.0, 320, 441)  # 22050 -> 16000 Hz


def _babble_sources(engine: Espeak, talkers: tuple[Talker, ...]) -> list[np.ndarray]:
    out = []
    for t in talkers:
        engine.set_voice(t.speaker.voice)
        engine.set_params(rate=t.rate, pitch=50, pitch_range=50, volume=100)
        pcm, _ = engine.synth(" ".join(t.words) + ".", seed=t.seed)
        out.append(_to_16k(pcm))
    return out


def _synth_shard(job: tuple[list[PlannedUtterance], str, str, float, str]) -> list[dict]:
    """Synthesise one shard into ``wav_dir``; returns manifest records as dicts, in plan order.
    Speakers with traits of their own (format 3) get an espeak-ng folder holding this shard's
    voices (its speakers' and their babble talkers'), made under ``scratch`` (the run's short
    temporary folder, which synthesize() removes however the run ends) and removed with the shard."""
    plans, wav_dir, audio_format, noise_db, scratch = job
    os.makedirs(wav_dir, exist_ok=True)
    variants = {s.variant: s.traits for p in plans for s in (p.speaker, *(t.speaker for t in p.babble))
                if s.traits is not None}
    voices = tempfile.mkdtemp(prefix="voices-", dir=scratch) if variants else None
    try:
        if voices is not None:
            voice_data(voices, variants)
        return _synth_plans(plans, wav_dir, audio_format, noise_db, voices)
    finally:
        if voices is not None:
            shutil.rmtree(voices, ignore_errors=True)


def _synth_plans(plans: list[PlannedUtterance], wav_dir: str, audio_format: str, noise_db: float,
                 voices: str | None) -> list[dict]:
    engine = Espeak(voices)
    noise_std = 10 ** (noise_db / 20)
    records = []
    for p in plans:
        babble = _babble_sources(engine, p.babble) if p.babble else []
        engine.set_voice(p.speaker.voice)
        engine.set_params(rate=p.rate, pitch=p.pitch, pitch_range=p.style.pitch_range, volume=p.style.volume)
        pcm, events = engine.synth(" ".join(p.words) + ".", seed=p.seed)
        if pcm.size == 0:
            raise RuntimeError(f"espeak produced no audio for {p.id} ({p.speaker.voice}): {' '.join(p.words)!r}")
        wav = _to_16k(pcm)
        peak = np.abs(wav).max()
        if peak > 0.95:  # loud styles clip after resampling: limit, keep the rest of the dynamics
            wav *= 0.95 / peak
        if p.session is not None:  # the session's room, noise, microphone and band
            wav = apply_channel(wav, p.session.channel, _RIRS, np.random.default_rng([p.seed, 1]), babble)
        wav += np.random.default_rng(p.seed).normal(0.0, noise_std, wav.shape)
        path = os.path.join(wav_dir, f"{p.id}.{audio_format}")
        sf.write(path, wav.astype(np.float32), SAMPLE_RATE, subtype="PCM_16",
                 format="WAV" if audio_format == "wav" else "FLAC")
        align = phone_alignment(events, len(pcm), len(wav))
        records.append(asdict(Utterance(
            id=p.id, path=path, num_samples=len(wav), sample_rate=SAMPLE_RATE, speaker=p.speaker.id,
            style=p.style.name, text=" ".join(p.words), words=list(p.words),
            phones=[ph for ph, _, _ in align if ph != SILENCE], alignment=align, split=p.split,
            custom={"session": p.session.id} if p.session is not None else None)))
    return records


# ---------------------------------------------------------------------------------------------
# The corpus.


def _synth_all(cfg: SynthConfig, out: Path, planner: Planner, workers: int, progress: bool,
               rirs: list[np.ndarray], scratch: str) -> list[dict]:
    """Plan and synthesise utterances until the corpus holds ``cfg.minutes``; the records in
    plan order. Workers are forked, or spawned when this process has used espeak-ng itself (a
    forked worker would inherit its state: ``espeak.start_method``)."""
    target = cfg.minutes * 60.0
    records: list[dict] = []
    seconds = 0.0
    mean_duration = 2.8  # seconds per utterance, a first guess; measured after the first round
    bar = _progress(total=round(target), enabled=progress and _is_main())
    method = start_method()
    if method != "fork":
        log.info("espeak-ng was used in this process: synthesis workers are spawned, not forked")
    ctx = mp.get_context(method)
    # a fresh process per shard: reproducible
    with ctx.Pool(workers, maxtasksperchild=1, initializer=_init_worker, initargs=(rirs,)) as pool:
        while seconds < target:
            n_new = max(1, math.ceil((target - seconds) / mean_duration))
            plans = planner.take(n_new)
            shards: dict[int, list[PlannedUtterance]] = {}
            for p in plans:
                shards.setdefault(p.index // SHARD_SIZE, []).append(p)
            jobs = [(ps, str(out / "wav" / f"shard_{k:03d}"), cfg.audio_format, cfg.noise_db, scratch)
                    for k, ps in sorted(shards.items())]
            done: list[dict] = []
            for recs in pool.imap_unordered(_synth_shard, jobs):
                done += recs
                bar.update(round(sum(r["num_samples"] for r in recs) / SAMPLE_RATE, 1))
            done.sort(key=lambda r: int(r["id"].rsplit("-", 1)[1]))
            records += done
            seconds = sum(r["num_samples"] for r in records) / SAMPLE_RATE
            mean_duration = seconds / len(records)
    bar.close()
    return records


def synthesize(out: str | os.PathLike, cfg: SynthConfig, *, workers: int | None = None,
               overwrite: bool = False, progress: bool = True) -> Path:
    """Generate a JOOCI-synth corpus in ``out`` (or reuse the finished one already there).

    Writes ``wav/shard_NNN/<id>.wav``, one manifest per split (``pretrain.jsonl``, ``train.jsonl``,
    ``dev.jsonl``, ``test.jsonl``, ``heldout_dev.jsonl``), ``speakers.json``, the ASV trial list
    ``trials.txt`` (VoxCeleb style: ``1|0 <id> <id>``, among the held-out test speakers), the dev
    trial list ``trials_dev.txt`` (among the held-out dev speakers; only when there are some) and
    ``synth.json`` (config and statistics),
    which is written last and marks the corpus finished.

    Raises:
        SynthError: ``out`` holds a corpus made with other settings (and ``overwrite`` is off).
    """
    cfg.validate()
    out = Path(out)
    meta_path = out / "synth.json"
    version = format_version(cfg)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") == version and meta.get("config") == _config_json(cfg):
            log.info("%s: reusing the finished corpus (same settings)", out)
            return out
        if not overwrite:
            diff = {k: (meta.get("config", {}).get(k), v) for k, v in _config_json(cfg).items()
                    if meta.get("config", {}).get(k) != v}
            if meta.get("format_version") != version:
                diff["format_version"] = (meta.get("format_version"), version)
            raise SynthError(f"{out} holds a JOOCI-synth corpus made with other settings "
                             f"(existing vs requested: {diff}); choose another folder or overwrite it")
    if out.exists() and any(out.iterdir()):
        if not (overwrite or (out / "wav").exists()):  # an unfinished corpus of ours may be redone
            raise SynthError(f"{out} exists and is not a JOOCI-synth corpus; choose an empty or new folder")
        for name in ("wav", "synth.json", "speakers.json", "sessions.json", "trials.txt", "trials_dev.txt",
                     *(f"{s}.jsonl" for s in SPLITS)):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    from jooci.extras import check

    check("espeakng_loader", *(["pyroomacoustics"] if cfg.sessions else []))  # the synth extra, up front
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    speakers = plan_speakers(cfg)
    planner = Planner(cfg, speakers)
    rooms, rirs = room_impulse_responses(cfg.rooms, cfg.seed) if cfg.sessions else ([], [])
    # the workers' espeak-ng folders go here: a short path (espeak keeps its data path in a small
    # fixed buffer), removed even when the pool is terminated and its workers cannot clean up
    scratch = tempfile.mkdtemp(prefix="jooci-espeak-")
    try:
        records = _synth_all(cfg, out, planner, workers, progress, rirs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    utts = [Utterance(**r) for r in records]
    for split in SPLITS:
        write_manifest([u for u in utts if u.split == split], out / f"{split}.jsonl")
    (out / "speakers.json").write_text(json.dumps([s.to_json() for s in speakers], indent=1))
    if cfg.sessions:
        (out / "sessions.json").write_text(json.dumps(
            {"rooms": [asdict(r) for r in rooms],
             "sessions": [asdict(x) for spk in speakers for x in planner.sessions[spk.id]]}, indent=1))
    trials = make_trials(utts, {s.id for s in speakers if s.heldout}, seed=cfg.seed, max_trials=cfg.max_trials,
                         fill=bool(cfg.sessions))
    write_trials(trials, out / "trials.txt")
    stats = corpus_stats(utts)
    stats["trials"] = len(trials)
    dev_speakers = {s.id for s in speakers if s.heldout_dev}
    if dev_speakers:
        dev_trials = make_trials(utts, dev_speakers, seed=cfg.seed, max_trials=cfg.max_trials, fill=bool(cfg.sessions))
        write_trials(dev_trials, out / "trials_dev.txt")
        stats["dev_trials"] = len(dev_trials)
    stats["seconds_to_generate"] = round(time.perf_counter() - t0, 2)
    stats["workers"] = workers
    meta = {"format_version": version, "config": _config_json(cfg), "stats": stats}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    log.info("%s: %d utterances, %.1f min, %d speakers in %.1f s", out, stats["utterances"],
             stats["minutes"], stats["speakers"], stats["seconds_to_generate"])
    return out


def make_trials(utts: list[Utterance], heldout: set[str], *, seed: int, max_trials: int,
                fill: bool = False) -> list[tuple[int, str, str]]:
    """ASV trials among held-out speakers, as ``(1|0, id, id)``: every same-speaker pair (up to
    half of ``max_trials``) and as many different-speaker pairs (balanced, format 2), or with
    ``fill`` as many as make ``max_trials`` in all (format 3: targets are the scarce kind, and a
    list of SRE's kind, more non-targets than targets, resolves the false-alarm side too).

    With sessions (``session`` in the utterances' ``custom``), a speaker's same-speaker pairs are
    taken across sessions only (within a session only for a speaker with no cross-session pair),
    as VoxCeleb's target trials mostly are: the channel changes, the speaker does not."""
    rng = random.Random(f"trials/{seed}")
    test = [u for u in utts if u.speaker in heldout]
    by_spk: dict[str, list[str]] = {}
    for u in test:
        by_spk.setdefault(u.speaker, []).append(u.id)
    session = {u.id: (u.custom or {}).get("session") for u in test}
    target = []
    for ids in by_spk.values():
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        if any(session[a] is not None for a in ids):  # with sessions: a speaker's cross-session pairs
            pairs = [(a, b) for a, b in pairs if session[a] != session[b]] or pairs
        target += pairs
    if len(target) > max_trials // 2:
        target = rng.sample(target, max_trials // 2)
    groups = list(by_spk.values())
    possible = sum(len(a) * len(b) for i, a in enumerate(groups) for b in groups[i + 1:])
    nontarget: set[tuple[str, str]] = set()
    want = max_trials - len(target) if fill else len(target)
    while len(nontarget) < min(want, possible):
        a, b = rng.sample(test, 2)
        if a.speaker != b.speaker:
            nontarget.add((a.id, b.id) if a.id < b.id else (b.id, a.id))
    trials = [(1, a, b) for a, b in target] + [(0, a, b) for a, b in sorted(nontarget)]
    rng.shuffle(trials)
    return trials


def corpus_stats(utts: list[Utterance]) -> dict:
    """Counts a user checks first: minutes, speakers, styles and phone coverage per split."""
    phones = Counter(p for u in utts for p in (u.phones or []))
    sessions = {(u.custom or {}).get("session") for u in utts} - {None}
    return {
        **({"sessions": len(sessions)} if sessions else {}),
        "utterances": len(utts),
        "minutes": round(sum(u.duration for u in utts) / 60, 2),
        "speakers": len({u.speaker for u in utts}),
        "styles": dict(sorted(Counter(u.style for u in utts).items())),
        "splits": {s: {"utterances": sum(u.split == s for u in utts),
                       "minutes": round(sum(u.duration for u in utts if u.split == s) / 60, 2),
                       "speakers": len({u.speaker for u in utts if u.split == s})} for s in SPLITS},
        "phones": dict(sorted(phones.items())),
    }


def format_version(cfg: SynthConfig) -> int:
    """The corpus format ``cfg`` makes: 3 with sessions, else 2."""
    return SESSIONS_FORMAT_VERSION if cfg.sessions else FORMAT_VERSION


def _config_json(cfg: SynthConfig) -> dict:
    d = json.loads(json.dumps(asdict(cfg)))
    if not cfg.sessions:  # format 2's config as it was, so its corpora are reused
        for k in ("sessions", "rooms", "telephone_fraction", "test_sessions"):
            d.pop(k)
    else:  # resolved, so the default and its explicit value are the same corpus
        d["test_sessions"] = n_test_sessions(cfg.sessions, cfg.test_sessions)
    return d


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _progress(total: int, enabled: bool):
    from jooci.progress import progress

    return progress(total=total, unit="s", desc="JOOCI-synth (audio seconds)", dynamic_ncols=True, enabled=enabled)


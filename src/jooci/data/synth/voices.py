"""Speakers with continuous traits for JOOCI-synth with sessions: each speaker is an espeak-ng voice
variant of its own, written from drawn traits.

espeak-ng's voice variants (``espeak-ng-data/voices/!v/<name>``) set a voice's base pitch and
pitch range in Hz, a scale per formant (frequency, height and width in %), breathiness (``breath``
per formant) and roughness. JOOCI-synth format 2 picks one of 41 shipped variants per speaker;
with sessions every speaker gets a variant written from its own :class:`VoiceTraits`, so speakers
differ continuously (a formant scale is a vocal-tract length) and there are as many as asked.

:func:`voice_data` makes an espeak-ng-data folder that is the wheel's (linked, not copied), its
English voices only, plus those variant files; each synthesis job makes one with the voices it
needs and initialises :class:`jooci.data.synth.espeak.Espeak` on it.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GENDERS = ("male", "female")


@dataclass(frozen=True)
class VoiceTraits:
    """A speaker's voice: gender, base pitch and top of the pitch range (Hz), formant scale (%,
    one per espeak formant 0-8), breathiness (espeak ``breath`` level, 0 none) and roughness."""

    gender: str
    pitch_hz: float
    pitch_top_hz: float
    formants: tuple[float, ...]
    breath: int
    roughness: int


def draw_traits(rng: random.Random) -> VoiceTraits:
    """Traits from continuous distributions: male or female (even odds); base pitch log-normal
    around 115 Hz (male) or 205 Hz (female), sigma 0.15 in log; pitch top 1.3-1.9 x base; a
    vocal-tract scale for every formant (male 88-102 %, female 100-118 %), each formant jittered
    by +-3 %; breath 0-8; roughness 0-3."""
    gender = GENDERS[rng.randrange(2)]
    centre, (lo, hi) = (115.0, (88.0, 102.0)) if gender == "male" else (205.0, (100.0, 118.0))
    pitch = centre * math.exp(rng.gauss(0.0, 0.15))
    scale = rng.uniform(lo, hi)
    formants = tuple(round(scale * rng.uniform(0.97, 1.03), 1) for _ in range(9))
    return VoiceTraits(gender, round(pitch, 1), round(pitch * rng.uniform(1.3, 1.9), 1), formants,
                       rng.randint(0, 8), rng.randint(0, 3))


def variant_file(name: str, traits: VoiceTraits) -> str:
    """The espeak-ng variant file of ``traits`` (``name`` as espeak will know it)."""
    lines = ["language variant", f"name {name}", f"gender {traits.gender}", "",
             f"pitch {round(traits.pitch_hz)} {round(traits.pitch_top_hz)}"]
    lines += [f"formant {k} {round(f)} 100 100" for k, f in enumerate(traits.formants)]
    if traits.breath:
        lines.append("breath 0 " + " ".join([str(traits.breath)] * 7))
    if traits.roughness:
        lines.append(f"roughness {traits.roughness}")
    return "\n".join(lines) + "\n"


def voice_data(root: str | os.PathLike, variants: Mapping[str, VoiceTraits]) -> Path:
    """An espeak-ng-data folder at ``root`` for JOOCI-synth's English voices: the wheel's data
    linked, but of its voices only the English ones (``lang/gmw/en*``) and, as variants
    (``voices/!v``), one file per ``variants`` item (name -> traits). Returns ``root``.

    espeak-ng lists at most 349 voices (``N_VOICES_LIST``) and the wheel ships 245, so a folder
    holds the voices one synthesis job needs, not a corpus's every speaker.

    Raises:
        ValueError: a variant name that is not a plain file name, or more variants than espeak lists.
    """
    from jooci.extras import require

    source = Path(require("espeakng_loader").get_data_path())
    if len(variants) > MAX_VARIANTS:
        raise ValueError(f"{len(variants)} voice variants in one espeak-ng folder; espeak lists at most {MAX_VARIANTS}")
    for name in variants:
        if not name or os.sep in name or name.startswith("."):
            raise ValueError(f"voice variant name {name!r} is not a plain file name")
    root = Path(root)
    (root / "voices" / "!v").mkdir(parents=True, exist_ok=True)
    (root / "lang" / "gmw").mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name not in ("voices", "lang"):
            (root / entry.name).symlink_to(entry)
    for entry in (source / "lang" / "gmw").iterdir():
        if entry.name.startswith("en"):
            (root / "lang" / "gmw" / entry.name).symlink_to(entry)
    for name, traits in variants.items():
        (root / "voices" / "!v" / name).write_text(variant_file(name, traits), encoding="utf-8")
    return root


MAX_VARIANTS = 300  # espeak-ng's 349-voice list, less the English voices and a margin


__all__ = ["GENDERS", "MAX_VARIANTS", "VoiceTraits", "draw_traits", "variant_file", "voice_data"]

"""A small ctypes binding to libespeak-ng, as shipped by the PyPI package ``espeakng-loader``.

espeak-ng 1.52 (from the wheel, no system package needed) synthesises into memory at 22050 Hz and
reports one event per phoneme (IPA name and sample offset), which is what JOOCI-synth turns into
sample-level phone alignments. ``espeak_ng_SetRandSeed`` before each utterance makes the output
reproducible for a fixed generation order; the library keeps state across utterances, so one
process must generate a shard's utterances in a fixed order (see ``generate.py``).

Valid English voices: en-us, en (British; "en-gb" is not a voice name), en-gb-scotland, en-gb-x-rp,
en-029, en-us-nyc, en-gb-x-gbclan, en-gb-x-gbcwmd, each with an optional "+variant".
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x0001, 0x0002, 0x8000
_CHARS_UTF8, _POS_CHARACTER = 1, 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EV_LIST_TERMINATED, _EV_PHONEME = 0, 7

ESPEAK_SAMPLE_RATE = 22050


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhonemeEvent:
    """An IPA phoneme (stress marks kept; "" for a pause) starting at ``sample`` (22050 Hz)."""

    name: str
    sample: int


_LOADED_IN: int | None = None  # the process id that initialised the library, if any


def loaded_here() -> bool:
    """Whether this process holds espeak-ng state: it initialised the library, or was forked from
    a process that had. That state (random generator, voices, caches) lives on in every child
    forked from it: a forked worker no longer starts clean, and what it synthesises depends on
    what this process did before. (Only loads through :class:`Espeak` are seen.)"""
    return _LOADED_IN is not None


def start_method() -> str:
    """How to start a worker that must begin with a clean espeak-ng: ``fork`` (fast) while this
    process has not loaded the library, else ``spawn``."""
    return "spawn" if loaded_here() else "fork"


def isolated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh process (:func:`start_method`), so neither this process's espeak-ng
    state reaches it nor its state stays here. ``fn`` and its result must pickle."""
    with mp.get_context(start_method()).Pool(1) as pool:
        return pool.apply(fn, args)


class Espeak:
    """One espeak-ng engine. The library is process-global: make one per process, and not in a
    process that will fork synthesis workers (:func:`isolated`, :func:`start_method`)."""

    def __init__(self, data_path: str | None = None) -> None:
        """``data_path``: an espeak-ng-data folder (default: the wheel's); :func:`voice_data` makes
        one that adds voice variants of its own."""
        from jooci.extras import require

        espeakng_loader = require("espeakng_loader")  # the synth extra
        global _LOADED_IN
        lib = self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        _LOADED_IN = os.getpid()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint),
                                     ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_int]
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, (data_path or espeakng_loader.get_data_path()).encode(),
                                     _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng initialised at {rate} Hz, expected {ESPEAK_SAMPLE_RATE}")
        self._chunks: list[np.ndarray] = []
        self._events: list[PhonemeEvent] = []

        def on_audio(wav, n, events):  # called synchronously from espeak_Synth
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while events[i].type != _EV_LIST_TERMINATED:
                if events[i].type == _EV_PHONEME:
                    name = events[i].id.string.decode("utf-8", "replace")
                    self._events.append(PhonemeEvent(name, int(events[i].sample)))
                i += 1
            return 0

        self._callback = _CALLBACK(on_audio)  # keep a reference: espeak holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.set_voice("en-us")

    def set_voice(self, name: str) -> None:
        """Select a voice such as ``"en-us+m3"``; ValueError if espeak does not know it."""
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {name!r}")

    def set_params(self, rate: int, pitch: int, pitch_range: int, volume: int, wordgap: int = 0) -> None:
        """Rate in words per minute (80-450), pitch and range 0-99, volume 0-200, word gap in 10 ms."""
        for key, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range),
                           (_VOLUME, volume), (_WORDGAP, wordgap)):
            self._lib.espeak_SetParameter(key, int(value), 0)

    def synth(self, text: str, seed: int) -> tuple[np.ndarray, list[PhonemeEvent]]:
        """Synthesise ``text``: int16 samples at 22050 Hz and the phoneme events."""
        self._lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        if self._lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"espeak_Synth failed on {text!r}")
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events


# IPA (as espeak-ng names its English phonemes, stress marks removed) -> ARPAbet-39. Built to leave
# no symbol unmapped across the 8 English accents. Non-rhotic accents map to US-style ARPAbet
# (a British "ɪə" becomes IH R), which keeps one phone inventory for every speaker.
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {k: tuple(v.split()) for k, v in {
    "ə": "AH", "ʌ": "AH", "ɐ": "AH", "ɪ": "IH", "ᵻ": "IH", "ɛ": "EH", "æ": "AE", "iː": "IY", "i": "IY",
    "uː": "UW", "u": "UW", "ʊ": "UH", "ɑː": "AA", "ɑ": "AA", "ɒ": "AA", "ɔː": "AO", "ɔ": "AO",
    "oʊ": "OW", "əʊ": "OW", "eɪ": "EY", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "ɜː": "ER", "ɚ": "ER",
    "ɝ": "ER", "ɑːɹ": "AA R", "ɔːɹ": "AO R", "ɛɹ": "EH R", "ʊɹ": "UH R", "ɪɹ": "IH R",
    "aɪɚ": "AY ER", "aɪə": "AY ER", "aʊɚ": "AW ER", "əl": "AH L", "eə": "EH R", "ɪə": "IH R",
    "ʊə": "UH R", "a": "AE", "e": "EH", "o": "OW", "ɔ̃": "AO", "ɜ": "ER", "ɡ": "G", "g": "G",
    "eː": "EY", "oː": "OW", "ɑə": "AA R", "aa": "AA", "əɪ": "EY", "ʉɹ": "UW R", "aː": "AA",
    "ʉː": "UW", "ʌʉ": "OW", "ʉ": "UW", "iə": "IH R", "ɛə": "EH R", "ɔə": "AO R", "a:": "AA",
    "oə": "OW R", "əɹ": "ER", "t̪": "T", "ʲ": "", "ɜːɹ": "ER", "ɐɹ": "ER", "aɪʊ": "AY", "ɒː": "AA",
    "ɔɪ̯": "OY", "ʌɹ": "ER", "ʍ": "W", "æʊ": "AW", "ei": "EY", "əu": "OW", "ʌʊ": "OW", "oɪ": "OY",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "f": "F", "v": "V", "θ": "TH", "ð": "DH",
    "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "tʃ": "CH", "dʒ": "JH", "m": "M", "n": "N",
    "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "ɾ": "T", "ʔ": "T", "n̩": "AH N",
    "l̩": "AH L", "x": "K", "ɬ": "L",
}.items()}

ARPABET_39: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
    "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
    "W", "Y", "Z", "ZH",
)
"""The 39-phone ARPAbet set (CMUdict without stress), the PR task's inventory."""


def ipa_to_arpabet(ipa: str) -> tuple[str, ...]:
    """Map one espeak IPA phoneme name (stress marks allowed) to ARPAbet phones.

    Raises KeyError for a symbol the table does not know, so a new accent cannot slip unlabelled
    phones into a corpus.
    """
    key = ipa.replace("ˈ", "").replace("ˌ", "")
    if key in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[key]
    if key.endswith("ː") and key[:-1] in IPA_TO_ARPABET:  # a lengthened vowel we know short
        return IPA_TO_ARPABET[key[:-1]]
    raise KeyError(f"no ARPAbet mapping for espeak phoneme {ipa!r}")

"""JOOCI-synth, the embedded default corpus (see :mod:`jooci.data.synth.generate`)."""

from jooci.data.synth.espeak import ARPABET_39, ipa_to_arpabet
from jooci.data.synth.generate import STYLES, SynthConfig, SynthError, synthesize

__all__ = ["ARPABET_39", "STYLES", "SynthConfig", "SynthError", "ipa_to_arpabet", "synthesize"]

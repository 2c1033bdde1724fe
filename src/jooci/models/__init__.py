"""JOOCI's networks: shared CNN, Content Transformer, Other SE-Res2Net encoder, heads, teacher."""

from jooci.models.baseline import BaselineConfig, HuBERTBaseline, baseline_config
from jooci.models.jooci import JOOCI, JOOCIConfig, jooci_config, parameter_breakdown, print_parameter_breakdown
from jooci.models.outputs import BaselineOutput, FeatureOutput, JOOCIOutput, OtherForwardOutput
from jooci.models.speaker import SpeakerConfig, SpeakerModel, speaker_config

__all__ = [
    "JOOCI", "JOOCIConfig", "jooci_config", "HuBERTBaseline", "BaselineConfig", "baseline_config",
    "SpeakerModel", "SpeakerConfig", "speaker_config", "FeatureOutput", "JOOCIOutput",
    "BaselineOutput", "OtherForwardOutput", "parameter_breakdown", "print_parameter_breakdown",
]

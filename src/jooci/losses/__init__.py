"""Losses: pure functions with their weights as arguments; stateful pieces are explicit objects."""

from jooci.losses.dino import (
    DINOCenter, MultiCropConfig, RegulariserOutput, View, covariance_loss, dino_loss, embedding_distillation,
    ema_update_,
    multi_crop, rdino_regulariser, variance_loss,
)
from jooci.losses.masked_prediction import IGNORE_INDEX, MPLOutput, compute_span_mask, multi_cluster_mpl
from jooci.losses.regulariser import AdversaryOutput, adversary_loss, confusion_loss, dann_lambda, reconstruction_loss
from jooci.losses.schedules import CosineSchedule

__all__ = [
    "IGNORE_INDEX", "AdversaryOutput", "CosineSchedule", "DINOCenter", "MPLOutput", "MultiCropConfig",
    "RegulariserOutput", "View", "adversary_loss", "compute_span_mask", "confusion_loss", "covariance_loss",
    "dann_lambda", "dino_loss", "embedding_distillation", "ema_update_", "multi_cluster_mpl", "multi_crop", "rdino_regulariser",
    "reconstruction_loss", "variance_loss",
]

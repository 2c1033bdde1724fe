"""Pretraining: config, per-phase step functions, the loop, DDP and checkpoints."""

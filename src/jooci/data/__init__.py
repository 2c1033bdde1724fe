"""Data: manifests, corpus scanners, the JOOCI-synth generator, datasets and batching."""

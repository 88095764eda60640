"""Experiments over many runs or after training: rate-distortion sweeps and comparisons, ex-post densities."""

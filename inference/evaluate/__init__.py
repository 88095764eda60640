"""Scoring a trained pair: ELBO terms (distortion, rate), importance-sampled log p(x), posterior collapse,
autoencoder measures."""

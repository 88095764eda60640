"""Real compression with a trained model: entropy coding of quantized codes, bits-back coding."""

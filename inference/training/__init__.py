"""Fitting a (model, guide) pair: the loss module, engines, the one SVI step, the trainer, data-parallel
training, the epoch loop, callbacks (monitors) and checkpoint state."""

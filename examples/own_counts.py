"""A count matrix of your own (here drawn from a known low-rank negative-binomial model) through the library."""
import numpy as np

from pyro_vae.inference import RunConfig, importance_log_likelihood, setup, train
from pyro_vae.inference.experiments.count_recovery import LowRankCounts

truth = LowRankCounts.random(features=40, theta=3.0, seed=0)
counts = truth.sample(2000, seed=1)  # (2000, 40) int64: cells x genes, users x items, windows x sensors
np.savez("counts.npz", train_x=counts[:1800], test_x=counts[1800:])

config = RunConfig.from_dict({"data": {"dataset": "array", "data_dir": "counts.npz"},
                              "model": {"likelihood": "negative_binomial", "latent_dim": 2},
                              "train": {"epochs": 20, "lr": 3e-3}})
run = setup(config)
train(run)
with run.params():
    ll = importance_log_likelihood(run.model, run.guide, run.data.test_x, num_samples=200)
exact = truth.log_likelihood(counts[1800:]).mean()
print(f"test log p(x): {ll.log_likelihood:.2f} nats per row; exact under the true model: {exact:.2f}")

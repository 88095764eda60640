"""Quickstart: the default VAE on the embedded MNIST digits, trained, scored and sampled from Python."""
from pyro_vae.inference import RunConfig, load_run, train_run
from pyro_vae.inference.evaluate.run_evaluation import evaluate_run
from pyro_vae.inference.report.samples import sample_run

config = RunConfig.from_dict({"model": {"latent_dim": 10}, "train": {"epochs": 3}})  # any keys of `vae config --dump`
metrics = train_run(config, "runs/quickstart", force=True, quiet=True)  # SVI + Trace_ELBO into a run folder
print(f"test ELBO after {len(metrics)} epochs: {metrics[-1]['test_elbo']:.1f} nats")

run = load_run("runs/quickstart")  # model p(x, z), guide q(z | x), data and trained parameters, from the folder
scores = evaluate_run(run, iw_samples=100, limit=200)  # -ELBO = D + R, and log p(x) from 100 importance samples
for what, nats, bits_per_dim in scores.rows():
    print(f"{what:20s} {nats:8.2f} nats  {bits_per_dim:.4f} bits/dim")
print("samples:", sample_run(run, n=16).path)  # a 4 x 4 grid of E[x | z], z ~ p(z)

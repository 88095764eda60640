"""Your own Pyro program on the toolkit's trainer: a function guide, a pyro.param, a pyro.optim scheduler."""
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.infer import Trace_ELBO

from pyro_vae.inference import (DataConfig, MinibatchStream, SVITrainer, evaluate_elbo, importance_log_likelihood,
                       load_dataset, prepare)
from pyro_vae.models import MLPDecoder, MLPEncoder

data = prepare(load_dataset(DataConfig()), binarize="none")  # grey levels, for a Gaussian likelihood
pyro.set_rng_seed(0)
Z, event = 8, data.event_shape
decoder, encoder = MLPDecoder(Z, event, hidden_dim=200), MLPEncoder(event, 2 * Z, hidden_dim=200)


def model(x, num_data=None, subsample=None):
    pyro.module("decoder", decoder)
    sigma = pyro.param("sigma", lambda: x.new_tensor(0.5), constraint=constraints.positive)  # learned
    with pyro.plate("data", num_data or x.shape[0], subsample=subsample):
        z = pyro.sample("z", dist.Normal(x.new_zeros(Z), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(decoder(z), sigma).to_event(3), obs=x)


def guide(x, num_data=None, subsample=None):
    pyro.module("encoder", encoder)
    loc, raw = encoder(x).split(Z, -1)
    with pyro.plate("data", num_data or x.shape[0], subsample=subsample):
        pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-4).to_event(1))


model.static_structure = guide.static_structure = True  # no Python-side state: the captured engines may replay them
scheduler = pyro.optim.ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 2e-3}, "gamma": 0.9})
trainer = SVITrainer(model, guide, Trace_ELBO(), scheduler, engine="trace")  # as SVI(model, guide, optim, loss)
batches = MinibatchStream(data.train_x, batch_size=128)
for epoch in range(3):
    for idx, x in batches:
        trainer.step(x, num_data=batches.num_data, subsample=idx)
    scheduler.step()  # as with Pyro's SVI: the user steps the schedule
trainer.check()
elbo = evaluate_elbo(model, guide, data.test_x)
ll = importance_log_likelihood(model, guide, data.test_x[:100], num_samples=500)
print(f"engine {trainer.engine}; trained {len(trainer.params)} parameters, sigma 0.500 -> {pyro.param('sigma').item():.3f}")
print(f"test ELBO {elbo.elbo:.1f} nats; log p(x) of 100 test images {ll.log_likelihood:.1f} +- {ll.standard_error:.2f}")

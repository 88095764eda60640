"""One process of a 2-process gloo job for tests/e2e/test_distributed.py (started by torchrun): K data-parallel
SVI steps on fixed global batches (engine ``off`` or ``trace``), then the parameters and losses to OUT/rank<r>.pt.

Two deterministic programs (a Delta guide and a flat prior: the gradient is a function of the batch alone, so
two processes and one must agree): the toolkit's plain autoencoder, and a user's program with a function guide
(its encoder registered by ``pyro.module``) and a likelihood whose scale is a ``pyro.param``."""
import sys

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer import Trace_ELBO

from pyro_vae.guides import DeltaGuide
from pyro_vae.inference.data.datasets import load_embedded_mnist
from pyro_vae.inference.training import parallel as distributed
from pyro_vae.inference.training.trainer import SVITrainer
from pyro_vae.models import BernoulliLikelihood, MLPDecoder, MLPEncoder, VAEModel, data_plate
from pyro_vae.models.likelihoods import Likelihood
from pyro_vae.models.priors import FlatPrior

LR, CLIP = 0.01, 5.0


class ParamScaleGaussian(Likelihood):
    static_structure = True  # reads no Python-side state that changes between steps

    def forward(self, decoded):
        sigma = pyro.param("sigma", lambda: torch.tensor(0.5), constraint=constraints.positive)
        return self._event(dist.Normal(decoded, sigma))

    def mean(self, decoded):
        return decoded


def plain_autoencoder(program: str = "autoencoder"):
    """A plain autoencoder (Delta guide, flat prior): its gradient is a deterministic function of the batch."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    x = torch.bernoulli(load_embedded_mnist().train_x[:300], generator=torch.Generator().manual_seed(0))
    event = x.shape[1:]
    if program == "autoencoder":
        model = VAEModel(FlatPrior(6), MLPDecoder(6, event, hidden_dim=32), BernoulliLikelihood(event))
        return model, DeltaGuide(MLPEncoder(event, 6, hidden_dim=32), 6), x
    model = VAEModel(FlatPrior(6), MLPDecoder(6, event, hidden_dim=32), ParamScaleGaussian(event))
    encoder = MLPEncoder(event, 6, hidden_dim=32)

    def guide(x, num_data=None, subsample=None):
        pyro.module("encoder", encoder)
        with data_plate(x.shape[0], num_data, subsample, x.device):
            pyro.sample("z", dist.Delta(encoder(x)).to_event(1))
    guide.static_structure = True  # no Python-side state: the captured engines may replay it
    return model, guide, x


def global_batches(n: int) -> list[torch.Tensor]:
    """Batches of 37 (the last one short: 300 = 8 x 37 + 4), then a batch of one point (one rank idle)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    return list(perm.split(37)) + [perm[:1]]


def trained(trainer: SVITrainer) -> dict:
    return {name: p.detach().clone() for name, p in zip(trainer.param_names, trainer.params)}


def main(out: str, engine: str, program: str) -> None:
    ctx = distributed.initialize(torch.device("cpu"))
    try:
        model, guide, x = plain_autoencoder(program)
        trainer = SVITrainer(model, guide, Trace_ELBO(), lr=LR, clip_norm=CLIP, engine=engine,
                             parallel=distributed.DataParallelEngine)
        losses = [float(trainer.step(x[idx], num_data=x.shape[0], subsample=idx)) for idx in global_batches(x.shape[0])]
        torch.save({"state": trained(trainer), "losses": losses, "engine": trainer.engine}, f"{out}/rank{ctx.rank}.pt")
    finally:
        distributed.finish()  # as the CLI does: a rank that exits while the other still talks to it aborts in gloo


if __name__ == "__main__":
    main(*sys.argv[1:4])

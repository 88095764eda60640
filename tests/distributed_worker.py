"""One process of a 2-process gloo job for tests/test_distributed.py (started by torchrun):
K data-parallel SVI steps on fixed global batches (Pyro's loss, or the captured graph: ``off``/``trace``), then the parameters and losses to OUT/rank<r>.pt."""
import sys

import pyro
import torch
from pyro.infer import Trace_ELBO

from guides import DeltaGuide
from inference import distributed
from inference.data import load_embedded_mnist
from models import BernoulliLikelihood, MLPDecoder, MLPEncoder, VAEModel
from models.priors import FlatPrior

LR, CLIP = 0.01, 5.0


def plain_autoencoder():
    """A plain autoencoder (Delta guide, flat prior): its gradient is a deterministic function of the batch."""
    pyro.set_rng_seed(0)
    x = torch.bernoulli(load_embedded_mnist().train_x[:300], generator=torch.Generator().manual_seed(0))
    event = x.shape[1:]
    model = VAEModel(FlatPrior(6), MLPDecoder(6, event, hidden_dim=32), BernoulliLikelihood(event))
    guide = DeltaGuide(MLPEncoder(event, 6, hidden_dim=32), 6)
    return model, guide, x


def global_batches(n: int) -> list[torch.Tensor]:
    """Batches of 37 (the last one short: 300 = 8 x 37 + 4), then a batch of one point (one rank idle)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    return list(perm.split(37)) + [perm[:1]]


def main(out: str, backend: str) -> None:
    ctx = distributed.initialize(torch.device("cpu"))
    try:
        model, guide, x = plain_autoencoder()
        trainer = distributed.DataParallelSVITrainer(model, guide, Trace_ELBO(), lr=LR, clip_norm=CLIP,
                                                     backend=None if backend == "off" else backend)
        losses = [trainer.step(x[idx], x.shape[0], idx) for idx in global_batches(x.shape[0])]
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        state.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
        torch.save({"state": state, "losses": losses}, f"{out}/rank{ctx.rank}.pt")
    finally:
        distributed.finish()  # as the CLI does: a rank that exits while the other still talks to it aborts in gloo


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""The adversarial autoencoder's training (Makhzani et al. 2015): the KL term replaced by a discriminator.
Its objective is ``inference/objectives/adversarial.py``.

Each step alternates, on the same minibatch:

1. reconstruction: the SVI step of ``D + 0 * R`` (``BetaELBO`` with beta = 0: -log p(x | z) only) on the
   model and its guide, by the ``SVITrainer`` on whichever engine ``make_trainer`` picks;
2. discriminator: ``discriminator_steps`` Adam steps on d(z) (an MLP, logits) to tell fresh prior draws
   z ~ p(z) (label 1) from codes f(x) of the batch (label 0);
3. generator: Adam on the encoder to make d call the codes prior draws: minimize -log sigmoid(d(f(x))).

Adam with beta1 = 0.5 for both adversarial optimizers (as for GANs, Radford et al. 2016) and five
discriminator steps per generator step: at the default sizes on the digits, one step each with
beta1 = 0.9 let the codes spread to twice the prior's scale (MMD^2 0.58 vs 0.06; the docs' family table).

So the aggregate posterior of the codes is pushed towards p(z) and ``vae sample`` decodes prior draws as
for the VAE. The three optimizers' states go into the checkpoint.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from pyro_vae.models.networks import mlp



class AdversarialTrainer:
    """The reconstruction's ``SVITrainer`` (``reconstruction``), then the adversarial steps, on each batch."""

    def __init__(self, reconstruction, model: nn.Module, guide: nn.Module, objective):
        self.reconstruction, self.model, self.guide = reconstruction, model, guide
        z = guide.latent_dim
        self.discriminator = mlp(z, objective.discriminator_hidden, 2, 1, "relu").to(
            next(guide.parameters()).device)
        self.objective = objective
        self.disc_optim = torch.optim.Adam(self.discriminator.parameters(), lr=objective.adversarial_lr,
                                           betas=objective.betas)
        self.gen_optim = torch.optim.Adam(guide.parameters(), lr=objective.adversarial_lr, betas=objective.betas)

    @property
    def grad_norm(self):
        return self.reconstruction.grad_norm

    @property
    def steps(self) -> int:
        return self.reconstruction.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.reconstruction.steps = value

    @property
    def engine(self) -> str:
        return self.reconstruction.engine

    @property
    def notice(self):
        return self.reconstruction.notice

    def _codes(self, x, y):
        return self.guide.code(x, y)

    def step(self, x: torch.Tensor, num_data: Optional[int] = None, subsample: Optional[torch.Tensor] = None,
             y: Optional[torch.Tensor] = None):
        loss = self.reconstruction.step(x, num_data=num_data, subsample=subsample, y=y)
        with torch.no_grad():
            codes = self._codes(x, y)
        for _ in range(self.objective.discriminator_steps):
            prior = self.model.prior(torch.Size([x.shape[0]])).sample()
            real, fake = self.discriminator(prior), self.discriminator(codes)
            disc_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            self.disc_optim.zero_grad()
            disc_loss.backward()
            self.disc_optim.step()
        fooled = self.discriminator(self._codes(x, y))
        gen_loss = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        self.gen_optim.zero_grad()
        gen_loss.backward()
        self.gen_optim.step()
        self.gen_optim.zero_grad(set_to_none=True)  # no stale encoder gradients reach the next SVI step
        self.discriminator.zero_grad(set_to_none=True)
        return loss

    def check(self) -> None:
        self.reconstruction.check()

    def optimizer_state(self) -> dict:
        return {"engine": "adversarial", "reconstruction": self.reconstruction.optimizer_state(),
                "discriminator": self.discriminator.state_dict(), "disc_optim": self.disc_optim.state_dict(),
                "gen_optim": self.gen_optim.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.reconstruction.load_optimizer_state(state["reconstruction"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optim.load_state_dict(state["disc_optim"])
        self.gen_optim.load_state_dict(state["gen_optim"])

"""The adversarial autoencoder's objective (Makhzani et al. 2015): the reconstruction -log p(x | z) (a
``BetaELBO`` with beta = 0) trained by SVI, and the settings of the adversarial steps that follow each SVI
step (``extend_trainer``: ``inference/training/adversarial.py``)."""
from __future__ import annotations

from dataclasses import dataclass

from pyro_vae.models.registry import option
from pyro_vae.inference.objectives.beta import BetaELBO


class AdversarialObjective(BetaELBO):
    """The reconstruction part (beta = 0) plus the settings of the adversarial part."""

    @dataclass
    class Config:
        adversarial_lr: float = option(1e-3, "objective adversarial: Adam rate of the discriminator and generator "
                                             "steps", above=0)
        discriminator_steps: int = option(5, "objective adversarial: discriminator steps per minibatch", above=0)

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls):
        """Why this objective cannot train with this prior (None: it can): the discriminator needs draws of the prior."""
        if not getattr(prior_cls, "can_sample", True):
            return ("the discriminator tells codes from draws of the prior, and this prior has no draws (it is "
                    "improper); use --prior normal or another proper prior")
        return None

    def __init__(self, discriminator_hidden: int = 256, lr: float = 1e-3, discriminator_steps: int = 5,
                 betas=(0.5, 0.999)):
        super().__init__(beta=0.0, analytic_kl=False)
        self.discriminator_hidden, self.adversarial_lr = discriminator_hidden, lr
        self.discriminator_steps, self.betas = discriminator_steps, tuple(betas)
        if discriminator_steps < 1 or not lr > 0:
            raise ValueError("the adversarial objective needs discriminator_steps >= 1 and lr > 0")

    @classmethod
    def from_config(cls, c) -> "AdversarialObjective":
        """The objective an ``ObjectiveConfig`` describes (its ``adversarial_lr`` and ``discriminator_steps``)."""
        return cls(lr=c.adversarial_lr, discriminator_steps=c.discriminator_steps)

    def extend_trainer(self, trainer):
        """The SVI trainer of the reconstruction, followed at each step by the adversarial steps."""
        from pyro_vae.inference.training.adversarial import AdversarialTrainer

        return AdversarialTrainer(trainer, trainer.model, trainer.guide, self)

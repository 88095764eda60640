"""``RecordingNUTS``: Pyro's NUTS, unchanged, recording what ArviZ's ``sample_stats`` expects per iteration.

The reference sampler runs C chains over P points as one NUTS trajectory on z of shape (C, P, Z) (see
``reference.py``), so step size, tree depth, leapfrog steps, acceptance and divergence are shared by the
chains. The energy is not: with a diagonal mass matrix the Hamiltonian is a sum over chains,
H = sum_c [U_c(z_c) + K_c(r_c)], U_c = -sum_p log p(x_p, z_cp), K_c = ‖M^(-1/2) r_c‖² / 2, and each chain's
H_c is what Betancourt (2016) calls the energy of its trajectory: recorded at the start of each iteration,
after the momentum is drawn, so ``az.bfmi`` (E[(E_n - E_(n-1))^2] / Var E) and ``az.plot_energy`` see the
chain's own energy transitions. Pyro's ``az.from_pyro`` gives ``diverging`` only; Stan's names are used
(``energy``, ``step_size``, ``tree_depth``, ``n_steps``, ``acceptance_rate``, ``diverging``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pyro.infer.mcmc import NUTS


class RecordingNUTS(NUTS):
    """NUTS whose ``sample`` records, per iteration, each chain's energy and the shared tree statistics.
    ``chain_potential(z)`` gives U_c for z of shape (C, P, Z) as a (C,) tensor; its sum is ``potential_fn``."""

    def __init__(self, *args, chain_potential: Callable[[torch.Tensor], torch.Tensor], num_chains: int,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.chain_potential, self.num_chains = chain_potential, num_chains
        self.records: dict[str, list] = {k: [] for k in ("energy", "step_size", "tree_depth", "n_steps",
                                                         "acceptance_rate")}

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        self._momentum = r_unscaled  # N(0, I): K = |r_unscaled|^2 / 2, Pyro's _kinetic_energy
        return r, r_unscaled

    def _build_basetree(self, *args, **kwargs):
        self._steps += 1  # one leapfrog step per base tree
        return super()._build_basetree(*args, **kwargs)

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        self._depth = max(self._depth, tree_depth + 1)  # the top-level call of doubling d has tree_depth d
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth, energy_current)

    def sample(self, params):
        self._steps, self._depth, start = 0, 0, params["z"]
        step_size = self.step_size  # the one this iteration's trajectory uses (adaptation updates it after)
        out = super().sample(params)
        with torch.no_grad():
            kinetic = sum(0.5 * v.reshape(self.num_chains, -1).pow(2).sum(-1) for v in self._momentum.values())
            energy = self.chain_potential(start) + kinetic
        self.records["energy"].append(energy.double().cpu().numpy())
        self.records["step_size"].append(step_size)
        self.records["tree_depth"].append(self._depth)
        self.records["n_steps"].append(self._steps)
        self.records["acceptance_rate"].append(float(self._mean_accept_prob))
        return out

    def sample_stats(self, num_draws: int) -> dict:
        """The last ``num_draws`` iterations (the draws kept after warm-up), each (C, num_draws)."""
        energy = np.stack(self.records["energy"][-num_draws:], axis=1)  # (C, D)
        shared = {k: np.broadcast_to(np.asarray(v[-num_draws:]), (self.num_chains, num_draws)).copy()
                  for k, v in self.records.items() if k != "energy"}
        return {"energy": energy, **shared}

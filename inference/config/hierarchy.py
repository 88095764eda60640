"""What a hierarchical VAE (``--hierarchy``, ``models/hierarchical.py``) combines with: checked with the
config, before anything is loaded; every other combination is refused in one line saying why."""
from __future__ import annotations

from pyro_vae.inference.errors import ConfigError

HIERARCHY_GUIDES = ("bottom_up", "ladder")


def link_widths(units: list[int], top: int) -> list[int]:
    """Hidden width of each link x - z_1 - ... - z_L: twice the units of the stochastic layer above it
    (Burda et al. 2015: 200 between x and z_1 of 100 units, 100 between z_1 and z_2 of 50)."""
    return [2 * u for u in [*units, top]]


def check_hierarchy(config) -> None:
    units = config.model.hierarchy
    if units is None:
        if config.guide.hierarchy_guide != "bottom_up":
            raise ConfigError(f"--hierarchy-guide {config.guide.hierarchy_guide} is the guide of a hierarchical VAE; "
                              f"add --hierarchy UNITS or drop it")
        return
    if not units or min(units) < 1:
        raise ConfigError(f"model.hierarchy must be the units of one or more layers below the top, all positive; "
                          f"got {units}")
    m, g = config.model, config.guide
    refusals = [
        (m.arch != "mlp" or g.arch != "mlp", "takes MLP links only; use --arch mlp"),
        (m.conditional, "is not conditional; drop --conditional"),
        (g.guide != "diagonal_normal", "has a bottom-up guide of diagonal Gaussians; use --guide diagonal_normal"),
        (g.corruption != "none", "does not corrupt its input; use --corruption none"),
        (config.objective.name == "adversarial", "cannot train adversarially (its codes are z_1, the prior is over "
                                                  "the top layer); use another objective"),
        (config.objective.name == "mean_field" and g.hierarchy_guide == "bottom_up",
         "cannot use --objective mean_field with the bottom-up guide: Pyro's TraceMeanField_ELBO takes "
         "KL(q(z_l | x) || p(z_l | z_{l+1})) at the guide's z_{l+1}, drawn after z_l and from it, which is not the "
         "ELBO; use --objective elbo or beta (closed form only where exact) or --hierarchy-guide ladder"),
        (m.hidden_dim != type(m)().hidden_dim or g.hidden_dim != type(g)().hidden_dim,
         "sets each link twice as wide as the layer above it, so --hidden-dim does not apply; drop it"),
    ]
    for refused, why in refusals:
        if refused:
            raise ConfigError(f"a hierarchical VAE (--hierarchy {' '.join(map(str, units))}) {why}")

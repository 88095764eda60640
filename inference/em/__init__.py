"""EM against SVI (``vae compare-em``): exact EM where the posterior is exact (pPCA, mixtures),
Monte-Carlo EM, hard EM and wake-sleep where it is not (a nonlinear decoder)."""
from pyro_vae.inference.em.compare import EMComparisonConfig, run_comparison, write_comparison
from pyro_vae.inference.em.mixture import em_step, fit_mixture_em, fit_mixture_svi
from pyro_vae.inference.em.nonlinear import hmc_posterior_samples, laplace_log_likelihood, log_joint, posterior_modes
from pyro_vae.inference.em.ppca import fit_linear_vae, ppca_em, ppca_em_step

__all__ = ["EMComparisonConfig", "run_comparison", "write_comparison", "em_step", "fit_mixture_em",
           "fit_mixture_svi", "hmc_posterior_samples", "laplace_log_likelihood", "log_joint", "posterior_modes",
           "fit_linear_vae", "ppca_em", "ppca_em_step"]

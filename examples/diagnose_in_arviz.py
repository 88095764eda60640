"""A run's guide against NUTS in your own ArviZ workflow: python examples/diagnose_in_arviz.py RUN"""
import sys

import arviz as az

from pyro_vae.inference import load_run
from pyro_vae.inference.diagnostics import examine

found = examine(load_run(sys.argv[1]), [0, 1, 2], chains=2, draws=100, warmup=100)  # test points 0, 1, 2
print(az.summary(found.reference, var_names=["z"]).head())
print(az.loo(found.reference))
print(az.compare({"nuts": found.reference, "guide": found.guide}))

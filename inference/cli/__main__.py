"""``python -m pyro_vae.inference.cli``: the ``vae`` command (as ``torchrun -m pyro_vae.inference.cli`` starts it)."""
import sys

from pyro_vae.inference.cli.main import main

sys.exit(main())

"""``python -m inference.cli``: the ``vae`` command (as ``torchrun -m inference.cli`` starts it)."""
import sys

from inference.cli.main import main

sys.exit(main())

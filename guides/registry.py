"""The table of guides, chosen by name (``--guide diagonal_normal``)."""
from pyro_vae.models.registry import Registry

GUIDES: Registry = Registry("guide")

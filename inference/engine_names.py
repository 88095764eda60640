"""The names of the SVI engines (``--compile``, ``train.compile``), known without loading them: each resolves
to its class in ``pyro_vae.inference.training.engines`` when training asks for it, so a config names its
engine (and is checked) without importing training code. An engine registered later (``@register(name)``
there) is a name here too."""
from __future__ import annotations

from pyro_vae.models.registry import Registry

ENGINES: Registry = Registry("compile mode")
for _name, _cls in (("off", "InterpretedEngine"), ("trace", "TracedEngine"), ("inductor", "InductorEngine"),
                    ("auto", "AutoEngine")):
    ENGINES.register_lazily(_name, f"pyro_vae.inference.training.engines:{_cls}")

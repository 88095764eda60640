"""Every public class and function says what it is in a docstring of its own (the API reference shows nothing else:
``autodoc_inherit_docstrings = False`` in docs/conf.py, so a class without one would show no text, or none of ours).

Public:

- the names in ``__all__`` of ``pyro_vae.models``, ``pyro_vae.guides``, ``pyro_vae.inference`` and of the
  subpackages of ``pyro_vae.inference`` that have one (``objectives``, ``diagnostics``, ``em``);
- the module-level classes and functions of ``pyro_vae.models.registry``;
- every class registered in a registry of the library (likelihoods, priors, guides, objectives, KL schedules,
  engines, datasets);
- the toolkit's own classes a public class derives from (``RunConfig.from_dict`` is ``Section``'s);
- of each public class, every method, property, classmethod and staticmethod it defines itself (in its own
  ``__dict__``) whose name does not start with ``_``.

A class's docstring counts only when it is its own (``cls.__dict__["__doc__"]``, not a base class's as
``inspect.getdoc`` would give, nor the signature a dataclass writes for itself). Pure import and introspection.
"""
import importlib
import inspect
import re

import pyro_vae.guides as guides
import pyro_vae.inference as inference
import pyro_vae.models as models
import pyro_vae.models.registry as registry_module

PACKAGES = ["pyro_vae.models", "pyro_vae.guides", "pyro_vae.inference", "pyro_vae.inference.objectives",
            "pyro_vae.inference.diagnostics", "pyro_vae.inference.em"]
REGISTRIES = [("pyro_vae.models", "LIKELIHOODS"), ("pyro_vae.models", "PRIORS"), ("pyro_vae.guides", "GUIDES"),
              ("pyro_vae.inference.objectives", "OBJECTIVES"), ("pyro_vae.inference.objectives", "SCHEDULES"),
              ("pyro_vae.inference.training.engines", "ENGINES"), ("pyro_vae.inference.data.loaders", "DATASETS")]


def public_objects() -> dict:
    """Qualified name -> the public classes and functions (not yet their members), each once, under the first name
    found (a package's name before its module's); a public class brings the toolkit's classes it derives from."""
    found, seen = {}, set()

    def add(obj, where=None):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
            return
        seen.add(id(obj))
        found[where or f"{obj.__module__}.{obj.__qualname__}"] = obj
        for base in getattr(obj, "__mro__", ())[1:]:
            if base.__module__.startswith("pyro_vae."):
                add(base)

    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            add(getattr(module, name), f"{package}.{name}")
    for name, obj in vars(registry_module).items():
        if not name.startswith("_") and getattr(obj, "__module__", None) == registry_module.__name__:
            add(obj)
    for package, name in REGISTRIES:
        table = getattr(importlib.import_module(package), name)
        for entry in table.in_order():
            try:
                cls = table.get(entry)
            except (ImportError, AttributeError):  # a test's or a plugin's lazy entry, not importable here
                continue
            if cls.__module__.startswith("pyro_vae."):  # not a class a test or a plugin registered
                add(cls)
    return found


def own_class_doc(cls) -> str:
    """The class's own docstring: not a base class's, nor the signature a dataclass or NamedTuple writes for itself."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return ""
    if re.fullmatch(rf"{re.escape(cls.__name__)}\(.*\)", doc.strip(), flags=re.DOTALL):
        return ""
    return doc


def member_function(value):
    """The function behind a method, property, classmethod or staticmethod defined in a class body (else None)."""
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    if getattr(value, "func", None) is not None and type(value).__name__ == "cached_property":
        return value.func
    return value if inspect.isfunction(value) else None


def offenders() -> list[str]:
    missing = []
    for qualname, obj in sorted(public_objects().items()):
        if inspect.isfunction(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(qualname)
            continue
        if not own_class_doc(obj):
            missing.append(qualname)
        for name, value in vars(obj).items():
            function = member_function(value)
            if name.startswith("_") or function is None:
                continue
            doc = value.__doc__ if isinstance(value, property) else function.__doc__
            if not (doc or "").strip():
                missing.append(f"{qualname}.{name}")
    return missing


def test_the_public_api_is_found():
    public = public_objects()
    for expected in (models.BernoulliLikelihood, models.Registry, guides.IAFGuide, inference.posterior_collapse,
                     inference.BetaELBO, inference.RunConfig, registry_module.option):
        assert any(obj is expected for obj in public.values()), expected
    assert len(public) > 100


def test_every_public_class_and_function_has_a_docstring_of_its_own():
    missing = offenders()
    assert not missing, f"{len(missing)} public names without a docstring of their own:\n  " + "\n  ".join(missing)

"""How the library calls a user's Pyro program (model or guide), as Pyro's own ``SVI`` would.

A program is a ``PyroModule``, an ``nn.Module`` or a plain Python callable. The library calls every
program with the batch ``x`` and the keywords of its data convention (``DATA_KEYWORDS``: ``num_data``,
``subsample`` for the ``"data"`` plate, ``y`` for a conditional program); ``accepting(program)`` passes
a program only those of them its signature takes, and none whose value is ``None`` (so ``guide(x)``
works, and ``y`` reaches only programs that have it). Every other argument reaches the program as the
caller gave it, as under ``SVI``: a keyword the program does not take is Python's ``TypeError``.

**Static structure.** A captured engine runs a program's Python once and replays its tensor operations
(``inference/training/capture.py``), so a program that reads Python-side state which changes between
steps (a closure's annealing factor, a call counter, a ``pyro.param`` first read at a later call) would
train differently from Pyro's ``SVI`` without a word. The engines therefore capture only programs known
to have static structure (``static_problem``): the toolkit's own components, torch's and Pyro's layers
and objectives, and a user's program that declares it with ``static_structure = True`` (on the
function, the module or its class) -- the promise ``pyro.infer.JitTrace_ELBO`` asks of its users.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Iterator, Optional

from torch import nn

DATA_KEYWORDS = frozenset({"num_data", "subsample", "y"})  # what the library passes every program, if it takes them
# the toolkit's own packages, wherever they are installed: their components have static structure
_ROOT = __name__.rpartition(".")[0].rpartition(".")[0]
TOOLKIT_PACKAGES = tuple(f"{_ROOT}.{name}" if _ROOT else name for name in ("models", "guides", "inference"))
STATIC_LIBRARIES = ("torch.", "pyro.infer.", "pyro.nn.", "pyro.distributions.")  # layers, objectives, flows
EAGER_LIBRARIES = ("torch.", "pyro.nn.", "pyro.distributions.")  # their modules' parameters exist once built


def _signature(program: Callable):
    target = program.forward if isinstance(program, nn.Module) else program
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or C callable: pass everything, as Pyro does
        return None


def accepted_keywords(program: Callable) -> frozenset[str] | None:
    """The keyword names ``program`` takes; None when it takes any (``**kwargs``) or cannot be inspected."""
    sig = _signature(program)
    if sig is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(name for name, p in sig.parameters.items()
                     if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


class Accepting:
    """``program`` called with only the keywords it accepts (and none that is ``None``)."""

    def __init__(self, program: Callable):
        self.program = program
        self.names = accepted_keywords(program)

    def __call__(self, *args, **kwargs):
        return self.program(*args, **program_keywords(kwargs, self.names))

    def __getattr__(self, name: str):
        """Everything else is the program's own (an objective may use ``guide.code``, ``guide.latent_dim``)."""
        program = self.__dict__.get("program")
        if program is None:
            raise AttributeError(name)
        return getattr(program, name)


def select(kwargs: dict, names: frozenset[str] | None) -> dict:
    """The keywords among ``names`` (all when None) whose value is not None (a component's options)."""
    return {k: v for k, v in kwargs.items() if v is not None and (names is None or k in names)}


def program_keywords(kwargs: dict, names: frozenset[str] | None) -> dict:
    """The keywords a program receives: the data convention's only where it takes them and they are not None;
    every other keyword as given."""
    return {k: v for k, v in kwargs.items()
            if k not in DATA_KEYWORDS or (v is not None and (names is None or k in names))}


def accepting(program: Callable) -> Callable:
    """``program`` wrapped by ``Accepting`` (once: an ``Accepting`` is returned as it is)."""
    return program if isinstance(program, Accepting) else Accepting(program)


def modules(*programs) -> list[nn.Module]:
    """The programs that are ``nn.Module`` s (a plain function has no mode and no parameters of its own)."""
    return [p.program if isinstance(p, Accepting) else p for p in programs
            if isinstance(p.program if isinstance(p, Accepting) else p, nn.Module)]


@contextlib.contextmanager
def eval_mode(*programs) -> Iterator[None]:
    """The ``nn.Module`` programs in eval mode for the block, each restored to its own mode after."""
    chosen = [(m, m.training) for m in modules(*programs)]
    for m, _ in chosen:
        m.eval()
    try:
        yield
    finally:
        for m, training in chosen:
            m.train(training)


def _declared(obj) -> Optional[bool]:
    """The object's own ``static_structure`` declaration, or its class's (own, not inherited); None if neither."""
    own = getattr(obj, "__dict__", {}).get("static_structure")
    return own if own is not None else type(obj).__dict__.get("static_structure")


def _class_from(obj, prefixes: tuple) -> bool:
    module = type(obj).__module__ or ""
    return any(module == p.rstrip(".") or module.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def _unwrap(program):
    return program.program if isinstance(program, Accepting) else program


def _wrapped_callables(program) -> list:
    """The user callables a library module runs that are not its submodules: the function Pyro's
    ``AutoGuideList.append`` wraps in an ``AutoCallable`` (held as ``_guide``)."""
    from pyro.infer.autoguide import AutoCallable

    return [program._guide] if isinstance(program, AutoCallable) else []


def _unknown_part(program) -> Optional[object]:
    """The first part of ``program`` (itself, or one of its submodules) not known to have static structure."""
    program = _unwrap(program)
    if inspect.ismethod(program):  # ``vae.model`` of Pyro's tutorials: the function, else its object decides
        declared = _declared(program.__func__)
        return (None if declared else program) if declared is not None else _unknown_part(program.__self__)
    declared = _declared(program)
    if declared is not None:
        return None if declared else program
    if not _class_from(program, TOOLKIT_PACKAGES + STATIC_LIBRARIES):
        return program  # a user's function, callable object, module or objective
    for wrapped in _wrapped_callables(program):  # a library module around a user's function decides by it
        unknown = _unknown_part(wrapped)
        if unknown is not None:
            return unknown
    for child in program.children() if isinstance(program, nn.Module) else ():
        unknown = _unknown_part(child)
        if unknown is not None:
            return unknown
    return None


def known_static(program) -> bool:
    """True when every part of ``program`` is the toolkit's, torch's or Pyro's, or declares static structure."""
    return _unknown_part(program) is None


def describe_program(obj) -> str:
    if isinstance(obj, nn.Module) or not callable(obj) or not hasattr(obj, "__name__"):
        return type(obj).__name__
    return f"function {getattr(obj, '__qualname__', obj.__name__)!r}"


def static_problem(model, guide, objective=None) -> Optional[str]:
    """Why the program may not be captured (one phrase), or None: every part of the model, the guide and the
    objective is the toolkit's, torch's or Pyro's, or declares ``static_structure = True``."""
    for role, program in (("model", model), ("guide", guide), ("objective", objective)):
        unknown = None if program is None else _unknown_part(program)
        if unknown is not None:
            whole = _unwrap(program)
            where = f"the {role}" if unknown is whole else f"the {role}'s part"
            if inspect.ismethod(whole) and unknown is whole.__self__:
                where = f"the {role}, a method of"
            return (f"{where} {describe_program(unknown)} is not known to have static structure; set "
                    f"static_structure = True on it to capture it")
    return None


def builds_parameters_eagerly(*programs) -> bool:
    """True when every part of the programs is the toolkit's own or torch's: their parameters exist before the
    first call (an autoguide or a user's program may create them at its first call, from the random stream)."""
    def eager(program) -> bool:
        program = _unwrap(program)
        return isinstance(program, nn.Module) and all(
            _class_from(m, TOOLKIT_PACKAGES + EAGER_LIBRARIES) for m in program.modules())
    return all(eager(p) for p in programs)

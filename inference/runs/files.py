"""Atomic writes and safe loads.

Every file is written beside its target, flushed, fsynced and renamed over it,
so a crash leaves either the old file or the new one, never half of one.
Checkpoints are ``state_dict``s read with ``torch.load(weights_only=True)``:
nothing in them is ever unpickled as code.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from pyro_vae.inference.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON with sorted keys, written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_state(path: Path, state: dict) -> None:
    """Save a dict of ``state_dict``s (tensors, numbers, strings) atomically. Serialized in
    memory first, so a full disk surfaces as the ``OSError`` of the file write."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))


def load_state(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; refuse anything that is not plain data."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported content"
        raise UserError(f"refusing to load {path}: it holds objects that are not plain tensors ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a checkpoint written by this toolkit (top level is {type(state).__name__})")
    return state


def load_module_state(module: nn.Module, state: dict, what: str) -> None:
    """``load_state_dict`` with a message naming the first mismatched key or shape."""
    own = module.state_dict()
    for key, value in own.items():
        if key not in state:
            raise UserError(f"checkpoint {what} lacks {key!r}; it was written for a different model config")
        if not isinstance(state[key], torch.Tensor) or state[key].shape != value.shape:
            got = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            raise UserError(f"checkpoint {what} {key!r} has shape {got}, the model expects {tuple(value.shape)}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise UserError(f"checkpoint {what} has unexpected entry {extra[0]!r}; it was written for a different model config")
    module.load_state_dict(state)

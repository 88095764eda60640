"""What ``weights.pt`` and ``checkpoint.pt`` carry to prove themselves: a digest of their content and the config
of the run they belong to.

``state_digest(state)`` is a SHA-256 over every value of a saved state: tensors (their dtype, shape and bytes)
and plain values, dict keys in a fixed order. ``save_state`` writes it as the state's ``digest`` entry and
``load_state`` recomputes it: a flipped bit anywhere in the data is named in one line instead of loading.

``recorded_config(raw)`` is a run's ``config.json`` as canonical JSON, without the settings that may change
after training started (``EDITABLE``: more ``train.epochs`` to extend a run, the device, engine and how the data
is read, where it lives); the weights and the checkpoint hold it as their ``config`` entry, and ``check_config`` refuses a
``config.json`` that says otherwise (a digit changed in ``min_scale`` or ``seed``, another run's checkpoint).
Files written by 0.4.0 and earlier have neither entry and load as before.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import torch

from pyro_vae.inference.errors import UserError

DIGEST = "digest"  # a saved state's entry: state_digest of everything else in it
CONFIG = "config"  # weights.pt's and checkpoint.pt's entry: recorded_config of the run's config.json
EDITABLE = (("train", "epochs"), ("train", "device"), ("train", "data_placement"), ("train", "compile"),
            ("train", "cuda_graph"), ("data", "data_dir"), ("data", "workers"), ("data", "stream"),
            ("data", "memory_budget"), ("data", "decode_once"))  # may change after training began: more epochs,
# another machine's device, engine and memory, the data moved; not what is computed


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}:".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):  # torch.Size, and the tuples of a state, as lists
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:  # None, bool, int, float, str, bytes, a dtype: their repr round-trips through pickle
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def state_digest(state: dict) -> str:
    """SHA-256 (hex) of ``state`` without its ``digest`` entry."""
    digest = hashlib.sha256(b"pyro_vae state 1;")
    _feed(digest, {k: v for k, v in state.items() if k != DIGEST})
    return digest.hexdigest()


def check_digest(state: dict, path: Path) -> dict:
    """``state`` without its ``digest`` entry, which must match its content; a state without one (written by
    0.4.0 and earlier) as it is."""
    if DIGEST not in state:
        return state
    written = state.pop(DIGEST)
    if not isinstance(written, str) or written != state_digest(state):
        raise UserError(f"{path} is damaged (its content does not match the digest written with it); "
                        f"retrain or restore it")
    return state


def recorded_config(raw: dict) -> str:
    """``raw`` (a ``config.json``'s dict) as canonical JSON, without the ``EDITABLE`` settings."""
    kept = {name: dict(section) if isinstance(section, dict) else section for name, section in raw.items()}
    for section, key in EDITABLE:
        if isinstance(kept.get(section), dict):
            kept[section].pop(key, None)
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], value


def check_config(state: dict, config_path: Path, raw: dict, path: Path) -> None:
    """Refuse ``config.json`` (``raw``, read from ``config_path``) when it is not the config the state in ``path``
    was written under, naming the first setting that differs; a state that records none (0.4.0 and earlier) passes."""
    written = state.get(CONFIG)
    if written is None:
        return
    if not isinstance(written, str):
        raise UserError(f"{path} has a malformed {CONFIG!r} entry; it was not written by 'vae train'")
    if written == recorded_config(raw):
        return
    try:
        then = dict(_leaves(json.loads(written)))
    except ValueError:
        raise UserError(f"{path} has a malformed {CONFIG!r} entry; it was not written by 'vae train'") from None
    now = dict(_leaves(json.loads(recorded_config(raw))))
    key = next((k for k in sorted(set(then) | set(now)) if then.get(k, "<absent>") != now.get(k, "<absent>")), "?")
    raise UserError(f"{config_path} is not the config {path.name} was written under ({key} is "
                    f"{json.dumps(now.get(key, '<absent>'))}, was {json.dumps(then.get(key, '<absent>'))}): it was "
                    f"edited or belongs to another run; restore it, or train a new run")


def check_finite(state: dict, path: Path, parts: tuple = ("model", "guide", "params")) -> None:
    """Refuse a state whose parameters (``parts``) hold NaN or Inf, naming the first such tensor."""
    for part in parts:
        tensors = state.get(part)
        if not isinstance(tensors, dict):
            continue
        for name in sorted(tensors):
            value = tensors[name]
            if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()) \
                    and not bool(torch.isfinite(value).all()):
                raise UserError(f"{path} holds NaN or infinite values ({part} {name!r}): training diverged or the "
                                f"file is damaged; retrain or restore it")


def refuse_unknown_entries(state: dict, allowed: tuple, path: Path, what: str) -> None:
    """Refuse a state with an entry ``allowed`` does not name (not written by 'vae train')."""
    extra = sorted((k for k in state if k not in allowed), key=repr)
    if extra:
        raise UserError(f"{path} has an unexpected entry {extra[0]!r}; it is not {what} written by 'vae train' "
                        f"(restore it, or retrain)")


WEIGHTS_ENTRIES = ("model", "guide", "event_shape", "params", CONFIG)  # what weights.pt may hold


def check_weights(state: dict, path: Path) -> None:
    """Refuse, in one line, weights with an entry they never hold or with NaN or infinite parameters."""
    refuse_unknown_entries(state, WEIGHTS_ENTRIES, path, "a weights file")
    check_finite(state, path)

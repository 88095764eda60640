"""Atomic writes and safe loads.

Every file is written beside its target, flushed, fsynced and renamed over it,
so a crash leaves either the old file or the new one, never half of one. Only a regular file (or a new
path) is replaced: a link, pipe, device or folder given as an output is refused in one line, never replaced
(``check_output``), and a file is read only if it is a regular file (``paths.read_regular``), so nothing outside a
run folder is read, written or deleted through a link in it. A temporary file carries its writer's pid
(``.NAME.PID.XXXX.tmp``): one whose writer is gone is removed by the next writer (``remove_stray_temporaries``).
Checkpoints are ``state_dict``s read with ``torch.load(weights_only=True)``:
nothing in them is ever unpickled as code.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.paths import TEMPORARY, check_output, kind_of, open_regular
from pyro_vae.inference.runs.digest import DIGEST, check_digest, state_digest


ZIP_MAGIC = b"PK\x03\x04"


def temporary_name(path: Path) -> str:
    """The prefix of a temporary beside ``path`` (``.NAME.PID.``): whose it is, and that it is one."""
    return f".{Path(path).name}.{os.getpid()}."


def remove_stray_temporaries(folder: Path) -> list[str]:
    """Remove the temporaries in the run folder ``folder`` and its ``diagnostics/`` (links not followed) left by a
    writer that is gone (killed, or stopped by a full disk); returns their names. Called by the holder of the
    folder's writer lock (``lock.writing``): no other writer of the folder runs meanwhile."""
    removed = []
    for place in (Path(folder), Path(folder) / "diagnostics"):
        if kind_of(place) != "a folder":
            continue
        for entry in os.scandir(place):
            match = TEMPORARY.match(entry.name)
            if not match or _alive(int(match["pid"])):
                continue
            path = Path(entry.path)
            if match["kind"] == "new" and kind_of(path) == "a folder":
                shutil.rmtree(path, ignore_errors=True)
            elif match["kind"] == "tmp" and kind_of(path) is None:
                path.unlink(missing_ok=True)
            else:
                continue
            removed.append(str(path.relative_to(folder)))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except PermissionError:  # another user's process
        return True
    return True


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, then rename it to ``path`` (a regular file
    or a new path: ``check_output``). The temporary is named before it is made, and made inside the block that
    removes it, so no moment of an interruption leaves it behind; a failed write's ``OSError`` names ``path``."""
    path = Path(path)
    check_output(path)
    tmp = path.parent / f"{temporary_name(path)}{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to any new file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a write's or fsync's: name the file meant
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    _fsync_folder(path.parent)


def check_folder_to_replace(path: Path) -> None:
    """Refuse anything but a folder or nothing at ``path`` (a file, a link): ``new_folder`` would not replace it (a
    command checks it before its long work too)."""
    kind = kind_of(path)  # (None: a regular file, or nothing)
    if kind != "a folder" and os.path.lexists(path):
        raise UserError(f"{path} is {kind or 'a file'}, not a folder; remove it (nothing is written through or over "
                        f"it)")


@contextlib.contextmanager
def new_folder(path: Path) -> Iterator[Path]:
    """A folder to fill in place of the folder ``path`` (written as a whole: a reader, or an interruption, sees
    the old one or the new one, never a mixture): made empty beside it (``.NAME.PID.XXXX.new``), swapped in for
    ``path`` when the block ends (the old one then removed), removed if the block fails. Anything but a folder at
    ``path`` (a file, a link) is refused. Where the kernel cannot exchange two names, an interruption between
    the two renames of the swap leaves neither in place: the new folder stays beside it, a ``.new`` temporary."""
    path = Path(path)
    check_folder_to_replace(path)
    fresh = path.parent / f"{temporary_name(path)}{secrets.token_hex(4)}.new"
    try:
        os.mkdir(fresh)  # inside the block that removes it (the umask applies, as to any new folder)
        yield fresh
        _swap_in(fresh, path)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    _fsync_folder(path.parent)


def _swap_in(fresh: Path, path: Path) -> None:
    """``fresh`` renamed to ``path``; an existing ``path`` exchanged with it in one step where the kernel can
    (``renameat2(RENAME_EXCHANGE)``, Linux), else moved aside first; the old folder removed."""
    if not os.path.lexists(path):
        os.rename(fresh, path)
        return
    if _exchange(fresh, path):
        shutil.rmtree(fresh)  # the old folder, now under the new one's temporary name
        return
    old = path.parent / f"{temporary_name(path)}old.new"  # a stray temporary, if interrupted between the renames
    os.rename(path, old)
    os.rename(fresh, path)
    shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False where the kernel or filesystem cannot."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        return False
    rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    if rename(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_folder(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
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
    """Save a dict of ``state_dict``s (tensors, numbers, strings) atomically, with the SHA-256 of its content as
    its ``digest`` entry (``pyro_vae.inference.runs.digest``). Serialized in memory first, so a full disk
    surfaces as the ``OSError`` of the file write."""
    buffer = io.BytesIO()
    torch.save({**state, DIGEST: state_digest(state)}, buffer)
    atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))


def load_state(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; refuse anything that is not plain data, and content that
    does not match the digest written with it (returned without its ``digest`` entry; a file written by
    0.4.0 or earlier has none and loads as before)."""
    path = Path(path)
    fd = open_regular(path)
    if fd is None:
        raise UserError(f"no checkpoint at {path}")
    with os.fdopen(fd, "rb") as fh:
        if fh.read(4) != ZIP_MAGIC:  # torch.save writes a zip archive; anything else would be unpickled as such
            raise UserError(f"{path} is not a file torch.save wrote (no zip archive: empty, cut or replaced); restore "
                            f"it, or train the run again")
        fh.seek(0)
        state = _torch_load(fh, path, map_location)
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a checkpoint written by this toolkit (top level is {type(state).__name__})")
    return check_digest(state, path)


def _torch_load(fh, path: Path, map_location):
    try:
        return torch.load(fh, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported content"
        raise UserError(f"refusing to load {path}: it holds objects that are not plain tensors ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason}") from None


def load_module_state(module: nn.Module, state: dict, what: str) -> None:
    """``load_state_dict`` with a message naming the first mismatched key or shape."""
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {what} state is a {type(state).__name__}, not a dict of tensors; it was not "
                        f"written by 'vae train'")
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

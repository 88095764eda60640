"""What a path is, checked before the toolkit reads or writes through it (the standard library only: ``vae``'s
one-line errors read its temporary-file names before torch is imported).

A run folder holds regular files and its own folders; a link, pipe, device or socket in it is refused, never read,
written or deleted through. An output is written only to a regular file or a new path: a link, pipe, device or
folder given as an output file is refused in one line, never replaced by a file.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Optional

from pyro_vae.inference.errors import UserError

KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
         (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


# the temporary of a write to NAME (runs/files.py): .NAME.PID.XXXX.tmp (a file), .NAME.PID.XXXX.new (a folder)
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.(?P<kind>tmp|new)$")


def kind_of(path: Path) -> Optional[str]:
    """What ``path`` itself is (a link not followed) when it is not a regular file: ``"a symbolic link"``,
    ``"a folder"``, ``"a named pipe"``, ``"a device"``, ``"a socket"``; None for a regular file or no file."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return next((name for test, name in KINDS if test(mode)), None)


def open_regular(path: Path, flags: int = os.O_RDONLY, follow: bool = False) -> Optional[int]:
    """A descriptor of ``path`` if it is a regular file (None if there is none and ``flags`` do not create it).
    Opened without following a link (unless ``follow``: a user's own file, not a run folder's) and without
    blocking (a named pipe does not hang it), and checked once open; anything else is refused in one line."""
    kind = kind_of(Path(path).resolve() if follow else Path(path))
    if kind:
        raise UserError(f"{path} is {kind}, not a file; " + ("give the file itself" if follow else
                        "a run folder holds its own regular files only: replace it with the file, or remove it"))
    try:
        fd = os.open(path, flags | (0 if follow else os.O_NOFOLLOW) | os.O_NONBLOCK, 0o644)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UserError(f"cannot open {path}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in since it was looked at
        os.close(fd)
        raise UserError(f"{path} is not a regular file; replace it with the file, or remove it")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, limit: int, follow: bool = False) -> Optional[bytes]:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; None if there is none. A link
    (unless ``follow``: a user's own file, not a run folder's), pipe or device in its place is refused in one line
    (it is opened without following a link and without blocking, and checked again once open)."""
    path = Path(path)
    fd = open_regular(path, follow=follow)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if info.st_size > limit:
            raise UserError(f"{path} is {info.st_size:,} bytes, more than the {limit:,} such a file can be; it is "
                            f"not one written by this toolkit: restore it, or remove it")
        try:
            return fh.read(limit + 1)[:limit]
        except OSError as err:
            raise UserError(f"cannot read {path}: {err.strerror}") from None


def check_output(path: Path, what: str = "output") -> None:
    """Refuse, in one line, an output path that exists and is not a regular file: writing would replace a link
    (or what it points to), a pipe or a device by a file."""
    kind = kind_of(Path(path))
    if kind:
        raise UserError(f"{what} {path} {not_replaced(kind)}")  # a last guard: the options check it first


def not_replaced(kind: str) -> str:
    return f"names {kind}, which writing would replace by a file; give a regular file or a new path"


def output_folder_problem(path) -> Optional[str]:
    """Why an output folder option's ``path`` cannot be written into (an option's ``check``), or None: a folder (or a
    link to one: written into, never replaced) or a new path."""
    kind = kind_of(Path(path))
    if kind == "a folder" or kind is None and not os.path.lexists(path) or kind == "a symbolic link" and Path(path).is_dir():
        return None
    what = {None: "a file", "a symbolic link": "a symbolic link to something other than a folder"}.get(kind, kind)
    return f"names {what}, not a folder; choose another folder"

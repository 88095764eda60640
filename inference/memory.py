"""Sizes a user's numbers ask for, checked before anything is allocated.

Where a count sizes a tensor (``-n``, ``--draws``, ``--latent-dim``, an image size, ...), the command
computes the bytes it would hold at once and ``require_memory`` refuses, in one line naming the size, what
does not fit in the memory available: ``MemAvailable`` of ``/proc/meminfo`` (or the free physical pages),
less what a cgroup limit leaves, or the free memory of a CUDA device. Work that streams (importance
sampling over k, sampling in chunks) is bounded by its chunk instead and needs no check.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from pyro_vae.inference.errors import UserError


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _cgroup_free() -> Optional[int]:
    """What a cgroup (v2) memory limit leaves: the limit less what is used, not counting the page cache the
    kernel can reclaim (``inactive_file``)."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text())
        stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines() if line.count(" ") == 1)
        return int(limit) - used + int(stat.get("inactive_file", 0))
    except (OSError, ValueError):
        return None


def available_bytes(device: Optional[torch.device] = None) -> int:
    """Bytes that can be allocated now on ``device`` (the host's memory by default)."""
    if device is not None and torch.device(device).type == "cuda":
        device = torch.device(device)  # free on the device, and what PyTorch holds cached but unused
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + cached
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limited = _cgroup_free()
    return min(free, limited) if limited is not None else free


def require_memory(nbytes: float, what: str, remedy: str = "ask for less", device=None) -> None:
    """Refuse ``what`` (``"sampling 1000000000 images"``) if its ``nbytes`` cannot fit; nothing is allocated."""
    free = available_bytes(device)
    if nbytes > free:
        where = f"the {torch.device(device).type.upper()} device" if device is not None and \
            torch.device(device).type == "cuda" else "this machine"
        raise UserError(f"{what} would need at least {format_bytes(nbytes)} of memory at once, more than the "
                        f"{format_bytes(free)} {where} has free; {remedy}")

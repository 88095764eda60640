"""The file ``vae compress`` writes: a payload in a header that lets ``vae decompress`` tell a good file from
a damaged, truncated, foreign or random one before it decodes anything.

Layout (little-endian), version 1::

    magic b"VAEC" | uint16 version | uint16 kind | 32-byte run fingerprint | uint64 payload length
    | uint32 CRC-32 of the header so far | payload | uint32 CRC-32 of header and payload

``kind`` says which decoder reads the payload (``LOSSLESS``: bits-back, ``pyro_vae.inference.coding.bits_back``;
``CODES``: the rate-distortion autoencoder's codes, ``pyro_vae.inference.coding.entropy_coding``). The fingerprint is
``Run.fingerprint()``: a SHA-256 of the run's architecture and weights, so a file is decoded only with the
run (and the epoch of it) that wrote it. CRC-32 detects every single-bit flip and every burst of up to 32
bits; the header's own CRC lets a damaged length field be told from a truncated file. Files of the earlier
unchecked formats (``b"VAEL"``, ``b"VAEZ"``) are still read, with a notice that nothing can be verified.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.memory import require_memory

MAGIC, VERSION = b"VAEC", 1
LOSSLESS, CODES = 1, 2
KINDS = {LOSSLESS: "lossless bits-back images", CODES: "rate-distortion codes"}
HEADER = struct.Struct("<4sHH32sQ")  # then the header's CRC-32
CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + CRC.size
LEGACY = {b"VAEL": LOSSLESS, b"VAEZ": CODES}  # the unchecked formats before version 1


@dataclass
class Compressed:
    kind: int
    payload: bytes
    checked: bool = True  # False for a legacy file: no checksum, no fingerprint


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def pack(kind: int, fingerprint: bytes, payload: bytes) -> bytes:
    """``payload`` in a header: what ``vae compress`` writes."""
    if kind not in KINDS or len(fingerprint) != 32:
        raise ValueError("kind must be LOSSLESS or CODES and the fingerprint 32 bytes")
    head = HEADER.pack(MAGIC, VERSION, kind, fingerprint, len(payload))
    head += CRC.pack(_crc(head))
    return head + payload + CRC.pack(_crc(head + payload))


def first_line(err: BaseException) -> str:
    """An exception's message, one line of it, or its type's name when it has none."""
    return (str(err).strip() or type(err).__name__).splitlines()[0][:120]


def damaged(name, what: str) -> UserError:
    return UserError(f"{name} is damaged: {what}; it cannot be decoded (compress the images again)")


def _header(head: bytes, name) -> tuple[int, int, bytes, int]:
    """(version, kind, fingerprint, payload length) of a whole header whose first bytes may be damaged."""
    stored = CRC.unpack_from(head, HEADER.size)[0]
    if head[:4] != MAGIC:
        if _crc(MAGIC + head[4:HEADER.size]) == stored:  # our header with a changed magic number
            raise damaged(name, "its magic number has changed")
        raise UserError(f"{name} is not a file written by 'vae compress' (it does not begin with {MAGIC!r})")
    if _crc(head[:HEADER.size]) != stored:
        raise damaged(name, "its header checksum does not match")
    _, version, kind, fingerprint, length = HEADER.unpack_from(head)
    if version != VERSION:
        raise UserError(f"{name} has format version {version}; this toolkit reads version {VERSION}: decompress "
                        f"it with the version that wrote it")
    if kind not in KINDS:
        raise damaged(name, f"its kind {kind} is unknown")
    return version, kind, fingerprint, length


def read(stream: BinaryIO, name, fingerprint: bytes) -> Compressed:
    """Read and check a compressed file from a seekable ``stream``: refused in one line if it is random,
    truncated, damaged or written with another run (fingerprint). The length its checked header states is
    compared with the file's before it is read."""
    head = stream.read(HEADER_SIZE)
    if head[:4] in LEGACY:
        size = stream.seek(0, io.SEEK_END)
        require_memory(size, f"reading {name}")
        stream.seek(len(head))
        return Compressed(LEGACY[head[:4]], head[4:] + stream.read(), checked=False)
    if len(head) < HEADER_SIZE:
        if head[:4] != MAGIC[:len(head)]:
            raise UserError(f"{name} is not a file written by 'vae compress' (it does not begin with {MAGIC!r})")
        raise UserError(f"{name} is truncated: it ends after {len(head)} bytes, inside its {HEADER_SIZE}-byte "
                        f"header")
    _, kind, stored_fingerprint, length = _header(head, name)
    here = stream.tell()
    size = stream.seek(0, io.SEEK_END)  # compared before anything of that length is read
    stream.seek(here)
    promised = HEADER_SIZE + length + CRC.size
    if size < promised:
        raise UserError(f"{name} is truncated: it holds {size} bytes, its header promises {promised}")
    if size > promised:
        raise damaged(name, f"{size - promised} bytes follow the {promised} its header promises")
    body = stream.read(length + CRC.size)
    payload = body[:length]
    if _crc(head + payload) != CRC.unpack_from(body, length)[0]:
        raise damaged(name, "its checksum does not match (a changed bit?)")
    if stored_fingerprint != fingerprint:
        raise UserError(f"{name} was compressed with another run, or another epoch of this one (run fingerprint "
                        f"{stored_fingerprint.hex()[:12]}, this run's is {fingerprint.hex()[:12]}): decompress it "
                        f"with the run that wrote it")
    return Compressed(kind, payload)


def read_file(path: Path, fingerprint: bytes) -> Compressed:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"cannot read {path}: " + ("it is a folder" if path.is_dir() else "no such file"))
    try:
        with path.open("rb") as fh:
            return read(fh, path, fingerprint)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None

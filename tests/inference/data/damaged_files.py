"""Damaged own-data files, found by a hostile tester (each was once a traceback or a silently wrong load): rows of
the refusal table ``CASES`` of ``test_own_data_bad_input.py`` (and so of the docs' bad-input page). Each builds
the damaged input under ``tmp_path / "data"`` and returns ``(argv, the words of the one-line answer)``."""
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tests import own_data


def npy_bytes(x) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def lying_npy(shape, values: int) -> bytes:
    """An .npy (version 1.0, float64) whose header says ``shape`` and that holds ``values`` values."""
    header = repr({"descr": "<f8", "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + np.zeros(values).tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces ``width`` x ``height`` grey pixels, with a tiny (too short) image stream."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _data(tmp_path, name) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    return tmp_path / "data" / name


def _array(path, *more):
    return ["--dataset", "array", "--data-dir", path, "--likelihood", "gaussian", *more]


def _npy_header_promises_more(tmp_path):
    """an `.npy` whose header says (100, 3) over 30 values (read into memory)."""
    path = _data(tmp_path, "a.npy")
    path.write_bytes(lying_npy((100, 3), 30))
    return _array(path, "--stream", "never"), "is truncated: its header says (100, 3) of float64"


def _npy_header_promises_less(tmp_path):
    """an `.npy` whose header says (10, 3) over 300 values (once read as its first 10 rows)."""
    path = _data(tmp_path, "a.npy")
    path.write_bytes(lying_npy((10, 3), 300))
    return _array(path), "is damaged: its header says (10, 3) of float64 (368 bytes with the header), the file has 2528"


def _npy_huge_shape(tmp_path):
    """`--stream always`: an `.npy` whose header says (2**40, 784)."""
    path = _data(tmp_path, "a.npy")
    path.write_bytes(lying_npy((2 ** 40, 784), 300))
    return _array(path, "--stream", "always"), "is truncated: its header says (1099511627776, 784) of float64"


def _npz_named_npy(tmp_path):
    """an `.npz` archive named `a.npy`."""
    path = _data(tmp_path, "a.npy")
    path.write_bytes(_npz_bytes(train_x=np.ones((8, 3))))
    return _array(path), "a.npy is not an .npy array but a zip archive (.npz); save the array with np.save"


def _zip_not_npz(tmp_path):
    """a zip of text files named `a.npz`."""
    path = _data(tmp_path, "a.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_x.txt", "1,2,3")
    return _array(path), "a.npz is a zip archive without .npy arrays (it holds train_x.txt)"


def _npz_member_not_npy(tmp_path):
    """`--stream always`: an `.npz` whose `train_x.npy` holds text."""
    path = _data(tmp_path, "a.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_x.npy", "1,2,3")
    return _array(path, "--stream", "always"), "a.npz: train_x is not an .npy array"


def _npz_object_array(tmp_path):
    """an `.npz` whose `train_y` is an object array (a pickle: refused, never loaded)."""
    path = _data(tmp_path, "a.npz")
    np.savez(path, train_x=np.ones((8, 3)), test_x=np.ones((2, 3)), train_y=np.array([0, "cat"] * 4, dtype=object))
    return _array(path), "a.npz: train_y holds Python objects (object), which are stored as a pickle and never loaded"


def _pickle_named_npz(tmp_path):
    """`--stream always`: a pickle named `a.npz`."""
    import pickle

    path = _data(tmp_path, "a.npz")
    path.write_bytes(pickle.dumps(np.ones((8, 3))))
    return _array(path, "--stream", "always"), "a.npz is not an .npz archive but a Python pickle (never loaded"


def _npz_member_promises_less(tmp_path):
    """`--stream always`: an `.npz` whose `train_x` header says (10, 3) over 300 values."""
    path = _data(tmp_path, "a.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_x.npy", lying_npy((10, 3), 300))
    return _array(path, "--stream", "always"), "a.npz: train_x is damaged: its header says (10, 3) of float64"


def _csv_field_over_the_limit(tmp_path):
    """a CSV cell of 200,000 characters (over `csv.field_size_limit()`)."""
    path = _data(tmp_path, "a.csv")
    path.write_text("a,b\n1,2\n3," + "4" * 200_000 + "\n5,6\n")
    return _array(path), "a.csv line 3: field larger than field limit (131072) (an unclosed quote, or not a CSV file)"


def _csv_not_utf8(tmp_path):
    """`--stream always`: a Latin-1 CSV (`é` in line 3)."""
    path = _data(tmp_path, "a.csv")
    path.write_bytes("a,b\n1,2\nh\xe9,4\n5,6\n".encode("latin-1"))
    return _array(path, "--stream", "always"), "a.csv is not UTF-8 text (line 3 holds the byte 0xe9); save it as UTF-8"


def _image_over_the_pixel_limit(tmp_path):
    """a PNG whose header announces 10000x10000 pixels (over Pillow's guard), refused before decoding."""
    folder = own_data.image_folder(tmp_path / "data", n_train=8, n_test=4, classes=False)
    (folder / "train" / "huge.png").write_bytes(png_header_only(10_000, 10_000))
    return ["--dataset", "folder", "--data-dir", folder, "--image-size", "16", "16"], \
        "huge.png is 10000x10000 pixels (100,000,000), more than the 89,478,485 Pillow decodes"


def _idx_huge_shape(tmp_path):
    """`--dataset idx`: an IDX file whose header says 2**31 x 2**31 x 2**31 bytes."""
    import gzip

    from tests.helpers import write_folder

    (tmp_path / "data").mkdir(exist_ok=True)
    write_folder(tmp_path / "data")
    with gzip.open(tmp_path / "data" / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", *[2 ** 31] * 3))
    return ["--dataset", "idx", "--data-dir", tmp_path / "data"], \
        "is truncated: its header says shape (2147483648, 2147483648, 2147483648)"


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


CASES = [_npy_header_promises_more, _npy_header_promises_less, _npy_huge_shape, _npz_named_npy, _zip_not_npz,
         _npz_member_not_npy, _npz_object_array, _pickle_named_npz, _npz_member_promises_less,
         _csv_field_over_the_limit, _csv_not_utf8, _image_over_the_pixel_limit,
         _idx_huge_shape]

"""Arrays larger than memory: allocated on disk, and read from .npz files a chunk of rows at a time.

`np.load` reads an .npz member whole (its `mmap_mode` does not apply to npz members), so the loaders
read the series of a large .npz here, rows in order, from stored and compressed members alike.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def allocate_in(folder):
    """An `allocate(shape, dtype)` for the loaders that puts each array in a new memory-mapped .npy
    file in `folder`: what they read then lives on disk, and memory holds the chunk in hand."""
    names = itertools.count()
    return lambda shape, dtype: np.lib.format.open_memmap(Path(folder) / f"{next(names)}.npy", mode="w+",
                                                          dtype=dtype, shape=shape)


@contextlib.contextmanager
def _member(path, key: str):
    """The .npy member `key` of the .npz at `path`, open past its header: yields (file, (shape,
    fortran_order, dtype)). ValueError when the member is not an .npy array."""
    with zipfile.ZipFile(path) as archive:
        name = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key  # np.savez adds .npy
        with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            yield member, read(member)


def npz_header(path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the .npz member `key`, from its header alone."""
    with _member(path, key) as (_, (shape, _, dtype)):
        return shape, dtype


def npz_rows(path, key: str, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the .npz member `key`, `chunk_rows` rows at a time, in order.

    A member saved in Fortran order (`np.asfortranarray`) is not laid out row by row and is read whole.
    """
    with _member(path, key) as (member, (shape, fortran_order, dtype)):
        whole = np.frombuffer(member.read(), dtype).reshape(shape, order="F") if fortran_order else None
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        for start in range(0, shape[0], chunk_rows):
            n = min(chunk_rows, shape[0] - start)
            rows = whole[start:start + n] if fortran_order else np.frombuffer(member.read(n * row_bytes), dtype)
            yield start, rows.reshape(n, *shape[1:])

"""Files and folders that appear whole or not at all: the one place kseq renames what it wrote.

A reader (a server loading a SavedModel, a tuning worker reading a summary, `--resume` looking for
a run) must never see half a file or half a folder, and two writers must never share a temporary
path. Every file kseq writes goes through `write_atomically`; every folder through `new_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

PARTIAL_PREFIX = ".partial-"


def write_atomically(path, write) -> None:
    """Call `write(tmp)` on a temporary path unique to this process, then rename it to `path`.

    A reader never sees half a file, and concurrent writers (tuning workers) never share a
    temporary file: the last rename wins whole.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, data: dict) -> None:
    """`data` as indented JSON; NumPy scalars are written as the Python numbers they hold."""
    write_text(path, json.dumps(data, indent=2, default=_to_builtin) + "\n")


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def publish(partial, final) -> Path:
    """Rename the finished folder `partial` to `final` in one step; never replaces an existing folder."""
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists; refusing to overwrite it")
    os.rename(partial, final)
    return final


@contextlib.contextmanager
def new_folder(path):
    """Yield a temporary folder beside `path`; rename it to `path` when the block succeeds.

    `path` must not exist yet. If the block raises, the temporary folder is removed and `path`
    never appears.

    >>> import tempfile
    >>> with new_folder(Path(tempfile.mkdtemp()) / "model") as folder:
    ...     _ = (folder / "weights.txt").write_text("1")
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{PARTIAL_PREFIX}{path.name}-{secrets.token_hex(3)}")
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish(partial, path)

"""Loaders for the real file formats, each returning a `SequenceSet` (or a train/test pair).

Every problem with a file raises `kseq.utils.errors.InputError` naming the file, the line (1-based, as an
editor shows it) or field, and what was expected. The happy paths are vectorised; the slower
line-by-line scans run only to explain a file that failed to parse.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from kseq.data.sequence_set import SequenceSet, signal_lengths
from kseq.utils.disk_arrays import npz_header, npz_rows
from kseq.utils.errors import InputError

HEARTBEAT_CLASSES = ("N", "S", "V", "F", "Q")
HEARTBEAT_SAMPLES = 187
PAIN_CLASSES = ("no_pain", "low_pain", "high_pain")
PAIN_STEPS = 160
PAIN_LIMB_COLUMNS = ("n_legs", "n_hands", "n_eyes")
PAIN_FEATURE_COLUMNS = (
    tuple(f"pain_survey_{i}" for i in range(1, 5))
    + PAIN_LIMB_COLUMNS
    + tuple(f"joint_{i:02d}" for i in range(31))
)

# Cell texts read as NaN in heartbeat files: empty cells and the `nan` that NumPy writes.
_NA_TEXTS = ("", "nan", "NaN")
_SHOWN = 5  # how many offending items an error message lists
CHUNK_ROWS = 8192  # series read at a time where a file can be large (heartbeat CSV, npz): ~6 MB of heartbeats


def _existing_file(path) -> Path:
    """`path` as a Path, or InputError when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def _first(items) -> str:
    """The first few `items`, comma-separated, with a count of the rest."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:_SHOWN])
    return shown + (f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _cell(value) -> str:
    """A cell's value for an error message: strings quoted, numbers as they print."""
    return repr(value) if isinstance(value, str) else str(value)


def _index_of(names, values) -> np.ndarray:
    """The position in `names` of each of `values` (all known to be in `names`)."""
    names = np.asarray(names)
    sorter = np.argsort(names)
    return sorter[np.searchsorted(names, values, sorter=sorter)]


# --- Heartbeat CSV (Kaggle MIT-BIH / PTBDB) -------------------------------------------------


def load_heartbeat_csv(path, class_names=HEARTBEAT_CLASSES, *, allocate=np.empty,
                       chunk_rows: int = CHUNK_ROWS) -> SequenceSet:
    """Load a Kaggle MIT-BIH or PTBDB heartbeat file: no header, 187 samples then the label.

    Returns x (N, 187, 1) float32, integer labels into `class_names` (use
    `("normal", "abnormal")` for PTBDB) and `lengths`, the zero-padded tail cut off. `nan` cells
    read as NaN (gaps to fill later). x is parsed `chunk_rows` lines at a time into
    `allocate((N, 187), np.float32)`; with `kseq.utils.disk_arrays.allocate_in(folder)` it lives
    on disk, so a file larger than memory loads holding one chunk (and a few numbers per line).
    """
    path = _existing_file(path)
    x, labels, lengths = _read_heartbeat_rows(path, allocate, chunk_rows)
    y = _heartbeat_labels(path, labels, class_names)
    return SequenceSet(x[:, :, None], y, tuple(class_names), lengths=lengths)


def _read_heartbeat_rows(path: Path, allocate, chunk_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples (N, 187) and labels (N,) as float32, and each row's signal length, checking every
    line has 188 values.

    pandas' C parser reads chunks of rows straight to float32 into arrays sized by a line count
    up front, so a 400 MB file loads in seconds holding one copy of the data plus one chunk.
    """
    columns = HEARTBEAT_SAMPLES + 1
    rows = _count_lines(path)
    x, labels = allocate((rows, HEARTBEAT_SAMPLES), np.float32), np.empty(rows, np.float32)
    lengths = np.empty(rows, np.int64)
    filled = 0
    try:
        with pd.read_csv(path, chunksize=chunk_rows, header=None, engine="c", dtype=np.float32,
                         skip_blank_lines=False, keep_default_na=False, na_values=list(_NA_TEXTS)) as chunks:
            for chunk in chunks:
                values, end = chunk.to_numpy(), filled + len(chunk)
                if values.shape[1] != columns or end > rows:
                    break
                x[filled:end], labels[filled:end] = values[:, :HEARTBEAT_SAMPLES], values[:, -1]
                lengths[filled:end] = signal_lengths(values[:, :HEARTBEAT_SAMPLES])
                filled = end
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected lines of {columns} comma-separated values") from None
    except pd.errors.ParserError as err:  # a line with too many values
        raise _field_count_error(path, columns) or InputError(f"{path}: could not parse: {err}") from None
    except ValueError as err:  # a cell that is not a number (UnicodeDecodeError included)
        raise _non_numeric_error(path, err) from None
    if filled != rows or np.isnan(labels).any():  # short lines are read as NaN-filled rows
        error = _field_count_error(path, columns)
        if error is not None:
            raise error
        if filled != rows:
            raise InputError(f"{path}: read {filled} rows from {rows} lines; expected one beat per line")
    return x, labels, lengths


def _count_lines(path: Path) -> int:
    """Lines in `path` ended by \\n, \\r\\n or \\r, plus a last line without an ending."""
    newlines = returns = 0
    last = b""
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            newlines, returns, last = newlines + block.count(b"\n"), returns + block.count(b"\r"), block[-1:]
    return max(newlines, returns) + (last not in (b"", b"\n", b"\r"))


def _heartbeat_labels(path: Path, labels: np.ndarray, class_names) -> np.ndarray:
    """The label column as ints, or InputError naming the first line that is not a class index."""
    valid = np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 0) & (labels < len(class_names))
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise InputError(
            f"{path} line {row + 1}: label {labels[row].item()} is not a class index; "
            f"expected a whole number in 0..{len(class_names) - 1} for {tuple(class_names)}"
        )
    return labels.astype(np.int64)


def _field_count_error(path: Path, expected: int) -> InputError | None:
    """InputError for the first line without `expected` values; None if every line has them."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            found = line.count(",") + 1 if line.strip() else 0
            if found != expected:
                return InputError(f"{path} line {number}: found {found} values, expected {expected}")
    return None


def _non_numeric_error(path: Path, cause: Exception) -> InputError:
    """InputError naming the line and column of the first cell that is not a number."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            for column, cell in enumerate(line.rstrip("\r\n").split(","), start=1):
                if not _is_number(cell):
                    return InputError(f"{path} line {number}, column {column}: {cell!r} is not a number")
    return InputError(f"{path}: could not parse: {cause}")


def _is_number(cell: str) -> bool:
    """Whether pandas reads `cell` as a float (or as NaN) in a heartbeat file."""
    if cell.strip() in _NA_TEXTS:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


# --- NumPy .npz ------------------------------------------------------------------------------

_NPZ_SMALL = ("y_train", "y_test", "class_names", "lengths_train", "lengths_test")  # read whole


def load_npz(path, *, allocate=np.empty, chunk_rows: int = CHUNK_ROWS) -> tuple[SequenceSet, SequenceSet | None]:
    """Load `x_train, y_train` and, when the file has them, `x_test, y_test` (test is None
    otherwise; runs then split the training set by `data.test_split`, as for a lone CSV), with the
    optional `class_names`, `lengths_train` and `lengths_test`, from an .npz file.

    x is (N, T) or (N, T, F) and may hold NaN (gaps are filled later). Series of unequal length are
    padded at the end to T; `lengths_train` / `lengths_test`, one integer in [1, T] per series,
    give their own lengths, and the steps after a series' length must be padding, 0 or NaN (read
    as 0). Without them, trailing all-zero steps are padding. Labels are ints indexing
    `class_names` when it is given; otherwise the classes are the distinct labels of both splits,
    sorted (numerically for numbers), so the archive's 1-based or -1/1 labels make no empty class
    0 that would score as a class never predicted. String labels name classes the same way, in
    `class_names`' order when given. Equal channel counts and the other
    train/test rules are checked where every source's pair meets, `kseq.data.loading.check_pair`.

    Each x is read `chunk_rows` series at a time into `allocate((N, T, F), np.float32)`, as in
    `load_heartbeat_csv`, from stored (`np.savez`) and compressed members alike; a member saved
    in Fortran order is not laid out series by series and is read whole.
    """
    path = _existing_file(path)
    arrays, splits = _read_npz(path)
    shapes = {f"x_{split}": _npz_x_shape(path, f"x_{split}") for split in splits}
    if len(splits) == 2 and shapes["x_train"][1] != shapes["x_test"][1]:
        raise InputError(f"{path}: x_train has {shapes['x_train'][1]} time steps (T) but x_test has "
                         f"{shapes['x_test'][1]}")
    for x_key, y_key in ((f"x_{split}", f"y_{split}") for split in splits):
        if arrays[y_key].ndim == 2 and arrays[y_key].shape[1] == 1:  # a column of labels, as Keras users keep them
            arrays[y_key] = arrays[y_key][:, 0]
        if arrays[y_key].shape != shapes[x_key][:1]:
            raise InputError(f"{path}: {x_key} has {shapes[x_key][0]} rows but {y_key} has shape {arrays[y_key].shape}")
    given = tuple(str(c) for c in arrays["class_names"]) if "class_names" in arrays else None
    y_test = arrays.get("y_test", arrays["y_train"][:0])  # no test split: the classes are the training set's
    class_names, *labels = _npz_labels(path, arrays["y_train"], y_test, given)
    sets = []
    for split, y in zip(splits, labels):
        lengths = _npz_lengths(path, arrays, f"x_{split}", shapes[f"x_{split}"])
        x = _npz_x(path, f"x_{split}", shapes[f"x_{split}"], lengths, allocate, chunk_rows)
        sets.append(SequenceSet(x, y, class_names, lengths=lengths))
    return sets[0], sets[1] if len(sets) == 2 else None


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The labels, lengths and class names in the .npz at `path` (`_npz_x` reads the series), and
    its splits, ("train",) or ("train", "test"), checking each split's two arrays are there."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = npz.files
            arrays = {key: npz[key] for key in _NPZ_SMALL if key in keys}
    except ValueError as err:  # not a zip, or an object array that needs pickle
        raise InputError(f"{path}: not a readable .npz of plain arrays ({err})") from None
    splits = ("train", "test") if {"x_test", "y_test"} & set(keys) else ("train",)
    missing = [f"{xy}_{split}" for split in splits for xy in "xy" if f"{xy}_{split}" not in keys]
    if missing:
        raise InputError(f"{path}: missing arrays {', '.join(missing)}; found {', '.join(sorted(keys)) or 'none'}")
    return arrays, splits


def _npz_x_shape(path: Path, key: str) -> tuple[int, int, int]:
    """The (N, T, F) shape of the series `key`, from its header; InputError for other ranks and non-numbers."""
    try:
        shape, dtype = npz_header(path, key)
    except ValueError as err:  # a member that is not an .npy array
        raise InputError(f"{path}: not a readable .npz of plain arrays ({key}: {err})") from None
    if len(shape) not in (2, 3) or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise InputError(f"{path}: {key} must be a numeric (N, T) or (N, T, F) array; got {dtype} {shape}")
    return shape[0], shape[1], math.prod(shape[2:])


def _npz_x(path: Path, key: str, shape: tuple, lengths: np.ndarray | None, allocate, chunk_rows: int) -> np.ndarray:
    """The series `key` as float32 `shape` (N, T, F) in `allocate`d memory, read `chunk_rows` at a
    time: infinities rejected, and with `lengths` the steps after each series' length set to 0
    (values there other than 0 and NaN rejected)."""
    x = allocate(shape, np.float32)
    infinite, stray = [], []
    for start, rows in npz_rows(path, key, chunk_rows):
        rows, end = rows.astype(np.float32, copy=False).reshape(len(rows), *shape[1:]), start + len(rows)
        infinite += (start + np.flatnonzero(np.isinf(rows).any(axis=(1, 2)))).tolist()
        if lengths is not None:
            after = (np.arange(shape[1])[None, :] >= lengths[start:end, None])[:, :, None]  # past each own length
            stray += (start + np.flatnonzero((after & (rows != 0) & ~np.isnan(rows)).any(axis=(1, 2)))).tolist()
            rows = np.where(after, np.float32(0), rows)
        x[start:end] = rows
    if infinite:
        raise InputError(f"{path}: {key} has infinite values in rows {_first(infinite)}; "
                         "expected finite numbers or NaN")
    if stray:
        raise InputError(f"{path}: {key} has values after the length {key.replace('x_', 'lengths_')} gives at rows "
                         f"{_first(stray)}; expected padding (0 or NaN) after each series' length")
    return x


def _npz_lengths(path: Path, arrays: dict, x_key: str, shape: tuple) -> np.ndarray | None:
    """The series' `lengths_<split>` as int64 (None when the file has none); InputError for lengths
    that are not one integer in [1, T] per series of the (N, T, F) `shape`."""
    key = x_key.replace("x_", "lengths_")
    if key not in arrays:
        return None
    lengths, (n, steps, _) = arrays[key], shape
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise InputError(f"{path}: {key} must hold one integer length per series of {x_key}, shape ({n},); "
                         f"got {lengths.dtype} {lengths.shape}")
    outside = np.flatnonzero((lengths < 1) | (lengths > steps))
    if len(outside):
        raise InputError(f"{path}: {key} has lengths outside [1, {steps}] (the steps of {x_key}) at rows "
                         f"{_first(outside)}; e.g. {key}[{outside[0]}] = {lengths[outside[0]]}")
    return lengths.astype(np.int64)


def _npz_labels(path: Path, y_train, y_test, given):
    """`(class_names, y_train, y_test)` with the labels as ints into `class_names`."""
    if y_train.dtype.kind in "US" or y_test.dtype.kind in "US":
        names = given or tuple(sorted(set(y_train.astype(str).tolist()) | set(y_test.astype(str).tolist())))
        return names, _string_labels(path, "y_train", y_train, names), _string_labels(path, "y_test", y_test, names)
    ints = {key: _int_labels(path, key, y, indices=given is not None)
            for key, y in (("y_train", y_train), ("y_test", y_test))}
    if given is None:  # the distinct labels are the classes, whatever numbers they are
        values = np.unique(np.concatenate(list(ints.values())))
        return (tuple(str(v) for v in values.tolist()),
                *(np.searchsorted(values, y).astype(np.int64) for y in ints.values()))
    for key, y in ints.items():
        outside = np.flatnonzero(y >= len(given))
        if len(outside):
            raise InputError(f"{path}: {key} has labels outside 0..{len(given) - 1} ({given}) "
                             f"at rows {_first(outside)}")
    return given, ints["y_train"], ints["y_test"]


def _string_labels(path: Path, key: str, y: np.ndarray, names) -> np.ndarray:
    """String labels as indices into `names`; InputError for labels that are not class names."""
    y = y.astype(str)
    unknown = sorted(set(y.tolist()) - set(names))
    if unknown:
        raise InputError(f"{path}: {key} has labels {_first(map(repr, unknown))} not in class_names {names}")
    return _index_of(names, y)


def _int_labels(path: Path, key: str, y: np.ndarray, indices: bool) -> np.ndarray:
    """Integer (or whole float) labels as int64, else InputError naming the first bad row; with
    `indices` (labels index `class_names`) they must also be >= 0."""
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise InputError(f"{path}: {key} must hold integer or string labels; got dtype {y.dtype}")
    bad = ~(np.isfinite(y) & (y == np.round(y))) if y.dtype.kind == "f" else np.zeros(y.shape, bool)
    if indices:
        bad |= y < 0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "an index into class_names (0, 1, 2, ...)" if indices else "a whole number or a string"
        raise InputError(f"{path}: {key}[{row}] is {y[row].item()}; expected {expected}")
    return y.astype(np.int64)


# --- Pain-level long-format CSV --------------------------------------------------------------


def load_pain_csv(features_csv, labels_csv=None, class_names=PAIN_CLASSES) -> SequenceSet:
    """Load the pain-level data: one row per time step, 160 steps per `sample_index`.

    x is (N, 160, 38) float32 with every column after `sample_index` and `time` as a feature, in
    file order. `n_legs`, `n_hands` and `n_eyes` are strings (`two`, `one+peg_leg`, ...) encoded
    as 0.0 for "two" and 1.0 for anything else; preprocessing later merges them into `n_limbs`.
    y comes from `labels_csv` (`sample_index,label` with class-name strings), or is -1 for all
    samples when no labels file is given.
    """
    features_csv = _existing_file(features_csv)
    features = _read_table(features_csv)
    labels = None
    if labels_csv is not None:
        labels_csv = _existing_file(labels_csv)
        labels = _read_table(labels_csv)
    return parse_pain_frames(features, labels, class_names,
                             features_source=str(features_csv), labels_source=str(labels_csv))


def _read_table(path: Path) -> pd.DataFrame:
    """A headed CSV as a DataFrame, InputError if it is empty."""
    try:
        return pd.read_csv(path, engine="c")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected a header line and rows") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: could not parse: {err}") from None


def parse_pain_frames(features: pd.DataFrame, labels: pd.DataFrame | None = None,
                      class_names=PAIN_CLASSES, *, features_source="features",
                      labels_source="labels") -> SequenceSet:
    """The pain-level `SequenceSet` from long-format frames as read from the CSV files.

    Shared by `load_pain_csv` and the embedded generator, so both go through the same checks.
    Line numbers in errors count the header as line 1, as in the files.
    """
    _require_columns(features, ("sample_index", "time", *PAIN_FEATURE_COLUMNS), features_source)
    feature_names = tuple(c for c in features.columns if c not in ("sample_index", "time"))
    values = np.column_stack([_pain_column(features, name, features_source) for name in feature_names])
    samples = _whole_column(features, "sample_index", features_source)
    times = _whole_column(features, "time", features_source)
    order = np.argsort(samples, kind="stable")
    sample_ids = _check_steps(samples[order], times[order], features_source)
    x = values[order].reshape(len(sample_ids), PAIN_STEPS, len(feature_names))
    if labels is None:
        y = np.full(len(sample_ids), -1)
    else:
        y = _pain_labels(labels, sample_ids, tuple(class_names), labels_source, features_source)
    return SequenceSet(x, y, tuple(class_names), feature_names=feature_names)


def _require_columns(frame: pd.DataFrame, required, source: str) -> None:
    """InputError naming the `required` columns that `frame` lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: missing columns {_first(missing)}")


def _pain_column(frame: pd.DataFrame, name: str, source: str) -> np.ndarray:
    """One feature column as float32: limb strings to 0/1, numbers as they are (NaN allowed)."""
    column = frame[name]
    if name in PAIN_LIMB_COLUMNS:
        missing = np.flatnonzero(column.isna().to_numpy())
        if len(missing):
            raise InputError(f"{source} line {missing[0] + 2}, column {name}: empty; expected a string such as 'two'")
        return (column.astype(str) != "two").to_numpy(np.float32)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float32)
    text = np.flatnonzero(np.isnan(numbers) & column.notna().to_numpy())
    if len(text):
        row = text[0]
        raise InputError(f"{source} line {row + 2}, column {name}: {_cell(column.iloc[row])} is not a number")
    return numbers


def _whole_column(frame: pd.DataFrame, name: str, source: str) -> np.ndarray:
    """An integer column (`sample_index`, `time`) as int64, naming the first line that is not."""
    numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if len(bad):
        row = bad[0]
        value = _cell(frame[name].iloc[row])
        raise InputError(f"{source} line {row + 2}, column {name}: {value} is not a whole number")
    return numbers.astype(np.int64)


def _check_steps(samples: np.ndarray, times: np.ndarray, source: str) -> np.ndarray:
    """The sorted distinct sample ids, checking each has 160 strictly increasing time steps.

    `samples` is sorted and `times` keeps each sample's file order.
    """
    ids, counts = np.unique(samples, return_counts=True)
    wrong = counts != PAIN_STEPS
    if wrong.any():
        shown = _first(f"{i} ({c} steps)" for i, c in zip(ids[wrong], counts[wrong]))
        raise InputError(f"{source}: expected {PAIN_STEPS} time steps per sample; sample_index {shown}")
    same = samples[1:] == samples[:-1]
    bad = np.flatnonzero(same & (times[1:] <= times[:-1]))
    if len(bad):
        i = bad[0]
        problem = "is duplicated" if times[i + 1] == times[i] else f"comes after time {times[i]}"
        raise InputError(f"{source}: sample_index {samples[i + 1]}: time {times[i + 1]} {problem}; "
                         "expected strictly increasing time steps")
    return ids


def _pain_labels(labels: pd.DataFrame, sample_ids: np.ndarray, class_names, source: str,
                 features_source: str) -> np.ndarray:
    """Labels aligned to `sample_ids`, checking names and that both files cover the same samples."""
    _require_columns(labels, ("sample_index", "label"), source)
    ids = _whole_column(labels, "sample_index", source)
    names = labels["label"].astype(str).to_numpy()
    unknown = np.flatnonzero(~np.isin(names, class_names))
    if len(unknown):
        row = unknown[0]
        value = _cell(labels["label"].iloc[row])
        raise InputError(f"{source} line {row + 2}: label {value} is not one of {class_names}")
    duplicated = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if len(duplicated):
        row = duplicated[0]
        raise InputError(f"{source} line {row + 2}: sample_index {ids[row]} is labelled twice")
    unlabelled = np.setdiff1d(sample_ids, ids)
    if len(unlabelled):
        raise InputError(f"{source}: no label for sample_index {_first(unlabelled)} of {features_source}")
    featureless = np.setdiff1d(ids, sample_ids)
    if len(featureless):
        raise InputError(f"{source}: sample_index {_first(featureless)} labelled but absent from {features_source}")
    return _index_of(class_names, names[_index_of(ids, sample_ids)])



# --- UCR/UEA .ts -----------------------------------------------------------------------------

_TS_INSTALL = "pip install 'kseq[ts]'"


def load_ts(path, class_names=None) -> SequenceSet:
    """Load a UCR/UEA time-series-classification `.ts` file (univariate or multivariate).

    Parsing is aeon's maintained reader (`aeon.datasets.load_from_ts_file`, the `kseq[ts]`
    extra), which follows the archive's format as it evolves; kseq only shapes its output and turns
    its errors into one-line `InputError`s with the file's line number. x is (N, T, F) float32 with
    T the longest series in the file: shorter series (unequal-length archives) are zero-padded at
    the end, and `lengths` holds every series' own length. Missing values (`?`, `NaN`) read as NaN,
    gaps that `kseq.data.preprocess.fill_gaps` fills later.

    Labels are read lowercased (aeon's reader lowercases each line). Class names are
    `class_names` in its order (compared case-insensitively), else the sorted distinct labels:
    numerically when every label is a number (so "2" comes before "10"), else as strings.
    """
    path = _existing_file(path)
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise InputError(f"{path}: reading .ts files needs aeon; {_TS_INSTALL}") from None
    try:
        # "nan" rather than aeon's default "NaN": the reader replaces "nan" inside lowercased
        # lines, labels included ("banana" would become "baNaNa"); "?" becomes "nan" either way.
        X, labels, meta = load_from_ts_file(str(path), replace_missing_vals_with="nan", return_meta_data=True)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except (OSError, ValueError, IndexError, KeyError) as err:
        raise _ts_error(path, err) from None
    x, lengths = _ts_arrays(path, X)
    labels = np.asarray(labels).astype(str)
    if not meta["classlabel"] or len(labels) != len(x):
        raise InputError(f"{path}: no class labels (@classLabel false); expected a labelled file, "
                         "each series ending in ':<label>'")
    infinite = np.isinf(x).any(axis=(1, 2))
    if infinite.any():
        lines = _ts_data_lines(path)
        raise InputError(f"{path} line {lines[int(np.flatnonzero(infinite)[0])]}: infinite value; "
                         "expected finite numbers or ? for missing values")
    names = tuple(class_names) if class_names else _sorted_labels(labels)
    return SequenceSet(x, _ts_labels(path, labels, names), names, lengths=lengths)


def _ts_arrays(path: Path, X) -> tuple[np.ndarray, np.ndarray]:
    """aeon's (n, channels, T) array or list of (channels, T_i) arrays as (N, T, F) and lengths."""
    if isinstance(X, np.ndarray) and X.ndim == 3:
        x = np.ascontiguousarray(X.transpose(0, 2, 1), dtype=np.float32)
        return x, np.full(len(x), x.shape[1], dtype=np.int64)
    series = list(X)
    if not series:
        raise InputError(f"{path}: no series after @data; expected one series per line")
    channels = {s.shape[0] for s in series}
    if len(channels) > 1:  # aeon checks this too; kept so a padded array is always well formed
        raise InputError(f"{path}: series have {sorted(channels)} channels; expected the same for all")
    lengths = np.array([s.shape[1] for s in series], dtype=np.int64)
    x = np.zeros((len(series), lengths.max(), channels.pop()), np.float32)
    for i, s in enumerate(series):
        x[i, : s.shape[1]] = s.T
    return x, lengths


def _sorted_labels(labels: np.ndarray) -> tuple[str, ...]:
    """The distinct labels, in numeric order when all are numbers (UCR's "1".."10"), else sorted."""
    distinct = sorted(set(labels.tolist()))
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(distinct)


def _ts_labels(path: Path, labels: np.ndarray, names: tuple) -> np.ndarray:
    """Labels as indices into `names` (case-insensitive), or InputError naming the first unknown."""
    lowered = tuple(n.lower() for n in names)
    unknown = np.flatnonzero(~np.isin(labels, lowered))
    if len(unknown):
        row = int(unknown[0])
        raise InputError(f"{path} line {_ts_data_lines(path)[row]}: label {str(labels[row])!r} is not one of {names}")
    return _index_of(lowered, labels)


def _ts_data_lines(path: Path) -> list[int]:
    """1-based line numbers of the lines after `@data`: aeon reads one series from each."""
    numbers, in_data = [], False
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if in_data:
                numbers.append(number)
            elif line.strip().lower() == "@data":
                in_data = True
    return numbers


def _ts_error(path: Path, err: Exception) -> InputError:
    """One line for an error aeon raised: its message, with the file's line number where known.

    aeon names a series as "case K", K counting lines after @data from 1; its float conversion
    errors name only the value, so the data lines are scanned for the first bad one.
    """
    message = " ".join(str(err).split())
    message = re.sub(r"^Error loading <[^>]*>\.\s*", "", message)
    lines = _ts_data_lines(path)
    case = re.search(r"\bcase (\d+)", message)
    if case and 0 < int(case.group(1)) <= len(lines):
        number = lines[int(case.group(1)) - 1]
        if not _line(path, number).strip():
            return InputError(f"{path} line {number}: empty line after @data; expected one series per line")
        return InputError(f"{path} line {number}: {message}")
    if isinstance(err, ValueError) and "convert" in message:
        bad = _ts_bad_value(path, lines)
        if bad is not None:
            return bad
    return InputError(f"{path}: not a readable .ts file: {message}")


def _ts_bad_value(path: Path, lines: list[int]) -> InputError | None:
    """InputError naming the first line after @data with a value that is not a number or `?`."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read().split("\n")
    for number in lines:
        line = text[number - 1].strip()
        if not line:
            return InputError(f"{path} line {number}: empty line after @data; expected one series per line")
        channels = line.rsplit(":", 1)[0] if ":" in line else line
        for value in re.split(r"[:,]", channels):
            if not _is_ts_value(value):
                return InputError(f"{path} line {number}: {value.strip()!r} is not a number or ?")
    return None


def _is_ts_value(text: str) -> bool:
    """Whether aeon reads `text` as a value: a float (NaN included) or `?` for missing."""
    if text.strip() == "?":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _line(path: Path, number: int) -> str:
    """Line `number` (1-based) of the text file at `path` (error paths only)."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        return next(itertools.islice(lines, number - 1, None), "")

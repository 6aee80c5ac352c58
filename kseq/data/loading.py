"""From a config's `[data]` table to the (train, test) `SequenceSet` pair, and stratified splits."""

from __future__ import annotations

import dataclasses

import numpy as np

from kseq.config import CHOICES
from kseq.data import sources, synthetic
from kseq.data.sequence_set import SequenceSet
from kseq.utils.errors import InputError

SOURCES = CHOICES["data", "source"]
MIN_TRAINING_SERIES = 2  # per class: stratified validation/test splits and per-class statistics need two
_CHECKED_VALUES = 1 << 18  # values (series x steps x channels) a NaN check looks at in one block


def stratified_split(data: SequenceSet, fraction: float, seed: int) -> tuple[SequenceSet, SequenceSet]:
    """Split off `fraction` of every class (at least one sample of a class with two or more)."""
    kept, held = stratified_split_index(data.y, fraction, seed)
    return data.subset(kept), data.subset(held)


def stratified_split_index(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`stratified_split`'s rows: (kept, held out), each sorted."""
    rng = np.random.default_rng(seed)
    held_out = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        take = int(round(fraction * len(members)))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        held_out.append(members[:take])
    held = np.sort(np.concatenate(held_out))
    return np.setdiff1d(np.arange(len(y)), held), held


def load_datasets(data: dict, seed: int) -> tuple[SequenceSet, SequenceSet]:
    """Load the train and test sets a `[data]` table describes, checked by `check_pair`.

    A real training file without a test file is split, stratified, by `data.test_split` (after
    the checks, so they count and number the series of the file as given).
    """
    source = data["source"]
    if source in ("synthetic_ecg", "synthetic_pain"):
        train, test = (synthetic.make_heartbeats(scale=data["scale"], seed=seed) if source == "synthetic_ecg"
                       else synthetic.make_pain(seed=seed))
        check_pair(train, test, f"{source} (train)", f"{source} (test)")
        return train, test
    train, test = load_files(data)
    return stratified_split(train, data["test_split"], seed) if test is None else (train, test)


def load_files(data: dict, *, allocate=np.empty,
               chunk_rows: int = sources.CHUNK_ROWS) -> tuple[SequenceSet, SequenceSet | None]:
    """The training and test files a real-data `[data]` table names, checked by `check_pair`; test
    is None when there is no test file (`load_datasets` then splits the training file).

    A test file whose series are longer or shorter than the training file's (unequal-length .ts
    archives) is matched by zero-padding the shorter set at the end, keeping `lengths`, so models
    see one T. The heartbeat CSV and npz loaders read `chunk_rows` series at a time into
    `allocate`d arrays (`kseq.utils.disk_arrays.allocate_in` puts them on disk, for files larger
    than memory); pain CSV and .ts files are small by nature and read whole.
    """
    source = data["source"]
    if source == "shards":
        raise InputError(f"data.source 'shards' ({data['path']}): shards stream from disk while training "
                         "(kseq.data.shards); they are not loaded into memory")
    if source not in SOURCES:
        raise InputError(f"data.source: unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if not data["path"]:
        raise InputError(f"data.path: source {source!r} needs a file (--data PATH)")
    if source == "npz":
        if data.get("test_path"):
            raise InputError(f"--test-data {data['test_path']}: an npz training file holds its own test split "
                             f"(x_test, y_test in {data['path']}); --test-data is for CSV and .ts files")
        train, test = sources.load_npz(data["path"], allocate=allocate, chunk_rows=chunk_rows)
        check_pair(train, test, f"{data['path']} (x_train)", f"{data['path']} (x_test)")
        return train, test
    names = {"class_names": tuple(data["class_names"])} if data.get("class_names") else {}
    load = {
        "heartbeat_csv": lambda path, labels: sources.load_heartbeat_csv(path, **names, allocate=allocate,
                                                                          chunk_rows=chunk_rows),
        "pain_csv": lambda path, labels: sources.load_pain_csv(path, labels or None, **names),
        "ts": lambda path, labels: sources.load_ts(path, **names),
    }[source]
    train = load(data["path"], data["labels"])
    test = load(data["test_path"], data["test_labels"]) if data["test_path"] else None
    if test is not None and train.class_names != test.class_names:
        train, test = _on_training_classes(train, test)
    check_pair(train, test, str(data["path"]), str(data["test_path"]))
    if test is None:
        return train, None
    steps = max(train.x.shape[1], test.x.shape[1])
    return pad_steps(train, steps), pad_steps(test, steps)


def check_pair(train: SequenceSet, test: SequenceSet | None, train_name: str, test_name: str = "") -> None:
    """Raise a one-line InputError where a train and test set cannot be trained and scored together.

    `test` is None for a training file that will be split. In order:
    - train and test must have the same number of channels (features, F);
    - no series may be missing in every channel over its length: gap filling has nothing to
      interpolate from, and NaN would reach the model. Series are numbered from 1 in the order the
      loader returns them: file order for heartbeat CSV lines and .ts series after @data, array
      rows for npz, sorted `sample_index` for pain files;
    - every class in the test set needs training series;
    - a class with training series needs at least two (`MIN_TRAINING_SERIES`): the stratified
      validation and test splits and per-class statistics take one each. Classes with no training
      series at all are allowed (a default or configured class list may name classes a file
      lacks; the model then never predicts them) unless the test set has them.
    Unlabelled series (label -1) take no part in the class checks.
    """
    if test is not None and train.x.shape[2] != test.x.shape[2]:
        raise InputError(f"{train_name} has {train.x.shape[2]} channels but {test_name} has {test.x.shape[2]}; "
                         "expected the same channels in both")
    for data, name in ((train, train_name), (test, test_name)):
        if data is not None:
            _check_not_all_missing(data, name)
            check_no_empty_channel(data, name)
    counts = np.bincount(train.y[train.y >= 0], minlength=len(train.class_names))
    if (counts > 0).sum() == 1:
        (only,) = np.flatnonzero(counts)
        raise InputError(f"{train_name}: every training series is of class {train.class_names[only]!r}; "
                         "a classifier needs at least 2 classes")
    if test is not None:
        tested = np.unique(test.y[test.y >= 0])
        untrained = [train.class_names[c] for c in tested if counts[c] == 0]
        if untrained:
            raise InputError(f"{test_name}: {_classes(untrained, 'is', 'are')} in the test set but not in the "
                             f"training set {train_name}; every test class needs training series")
    single = [train.class_names[c] for c in np.flatnonzero((counts > 0) & (counts < MIN_TRAINING_SERIES))]
    if single:
        raise InputError(f"{train_name}: {_classes(single, 'has', 'have')} only 1 training series; at least "
                         f"{MIN_TRAINING_SERIES} per class are needed (stratified validation and test splits "
                         "and per-class statistics need two)")


def _check_not_all_missing(data: SequenceSet, name: str) -> None:
    """InputError naming the first series (1-based) that is NaN in every channel over its length."""
    empty = []
    for start, x, signal, _ in _signal_blocks(data):
        missing = np.isnan(x).all(axis=2) & signal
        # Every step of the series' own length missing; all-zero rows (length 0) are padding, not gaps.
        empty += (start + np.flatnonzero((missing == signal).all(axis=1) & missing.any(axis=1))).tolist()
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise InputError(f"{name}: series {empty[0] + 1}{more} (1-based) has no values: every channel is "
                         "missing; remove it or give it data")


def check_no_empty_channel(data: SequenceSet, name: str, after: str = "") -> None:
    """InputError naming the first series (1-based) and channel missing (NaN) over the series'
    whole length: gap filling has no value in it to interpolate from, so NaN would reach the model.
    `after` says what ran before (a message after gap filling names the method)."""
    for start, x, signal, lengths in _signal_blocks(data):
        empty = (np.isnan(x) | ~signal[:, :, None]).all(axis=1) & (lengths > 0)[:, None]  # (n, F)
        if empty.any():
            series, channel = np.argwhere(empty)[0]
            label = (data.feature_names[channel] if getattr(data, "feature_names", None)
                     else f"{channel + 1} (1-based)")
            raise InputError(f"{name}: series {start + series + 1} (1-based), channel {label} is missing (NaN) over "
                             f"its whole length{after}; gap filling has nothing to interpolate from: remove the series "
                             "or the channel")


def _signal_blocks(data: SequenceSet):
    """(first series, x, signal, lengths) for consecutive blocks of `data`'s series, `signal` (n, T)
    True inside each series' own length: the checks hold one block's temporaries, never the whole
    set's, so they stay small for series on disk (`load_files`' `allocate`)."""
    n, steps, channels = data.x.shape
    lengths = data.lengths if data.lengths is not None else np.full(n, steps)
    rows = max(1, _CHECKED_VALUES // max(1, steps * channels))
    for start in range(0, n, rows):
        part = np.asarray(lengths[start:start + rows])
        yield start, data.x[start:start + rows], np.arange(steps)[None, :] < part[:, None], part


def check_filled(data: SequenceSet, name: str, method: str) -> None:
    """InputError where NaN is left after gap filling with `method`: a channel missing over a
    whole series, or any gap when `method` is "none". Training on NaN would give a NaN loss."""
    check_no_empty_channel(data, name, after=f" (preprocess.fill_gaps = {method!r})")
    nan = np.argwhere(np.isnan(data.x))
    if len(nan):
        series, step, channel = nan[0]
        raise InputError(f"{name}: series {series + 1} (1-based), channel {channel + 1} has a gap (NaN) at step "
                         f"{step + 1} and preprocess.fill_gaps = {method!r}; expected 'linear' or 'spline' to fill it")


def _classes(names, one: str, many: str) -> str:
    """`class 'a' <one>` or `classes 'a', 'b' <many>` for a message."""
    shown = ", ".join(repr(n) for n in names)
    return f"class {shown} {one}" if len(names) == 1 else f"classes {shown} {many}"


def _on_training_classes(train: SequenceSet, test: SequenceSet) -> tuple[SequenceSet, SequenceSet]:
    """Both sets on the training file's class names, test labels mapped by name.

    Test classes the training file lacks are appended to the names (training labels keep their
    indices), so that `check_pair` reports them with the other bad-input rules.
    """
    extra = tuple(n for n in test.class_names if n not in train.class_names)
    names = train.class_names + extra
    position = np.array([names.index(n) for n in test.class_names] + [-1])  # -1 keeps unlabelled
    test = dataclasses.replace(test, y=position[test.y], class_names=names)
    return dataclasses.replace(train, class_names=names), test


def pad_steps(data: SequenceSet, steps: int) -> SequenceSet:
    """`data` zero-padded at the end of the time axis to `steps`, with `lengths` set to the unpadded T.

    Zeros at the end are what kseq treats as padding (`fill_gaps`, masking models).
    """
    n, t, f = data.x.shape
    if t == steps:
        return data
    x = np.zeros((n, steps, f), np.float32)
    x[:, :t] = data.x
    lengths = data.lengths if data.lengths is not None else np.full(n, t, dtype=np.int64)
    return dataclasses.replace(data, x=x, lengths=lengths)



"""Every bad input kseq answers, one table per entry point: the command line, the loaders, the estimator.

A user's mistake must never train and report a number, nor end in a traceback. Each case asserts
the one `error: ...` line (exit code 2) or the exception type and message, and that nothing was
written: no run folder, finished or partial, and no scratch folder.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from kseq import SequenceClassifier
from kseq.config import load_config
from kseq.data import load_heartbeat_csv, load_npz
from kseq.data.loading import load_datasets
from kseq.experiments import run
from kseq.utils.errors import InputError

REPO = Path(__file__).parents[1]


def npz(path, **arrays):
    """A small valid npz (two classes of 4 series, 12 steps, 2 channels) with `arrays` replaced or removed."""
    rng = np.random.default_rng(0)
    base = {"x_train": rng.normal(size=(8, 12, 2)), "y_train": np.array([0, 1] * 4),
            "x_test": rng.normal(size=(4, 12, 2)), "y_test": np.array([0, 1] * 2)}
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return path


def channel_missing(n=8):
    x = np.random.default_rng(1).normal(size=(n, 12, 2))
    x[2, :, 1] = np.nan  # series 3, channel 2: nothing to interpolate from
    return x


def heartbeat_csv(path, label="0.5"):
    """Kaggle heartbeat format: 187 values then the label, one beat a line."""
    lines = [",".join(["0.1"] * 187 + [str(c)]) for c in (0, 1, 0, 1)]
    lines[2] = ",".join(["0.1"] * 187 + [label])
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the command line: `python -m kseq.experiments.run` ----------------------------------------

# (id, arguments, files to make {name: writer(path)}, the message the error line holds)
CLI = [
    ("unknown experiment", ["no_such_experiment"], {}, "unknown experiment 'no_such_experiment'"),
    ("unknown key", ["ecg_cnn", "--set", "train.epochz=1"], {}, "unknown key train.epochz"),
    ("unknown section", ["ecg_cnn", "--set", "nosuch.key=1"], {}, "unknown section [nosuch]"),
    ("override without section", ["ecg_cnn", "--set", "epochs=3"], {}, "expected section.key=value"),
    ("missing data file", ["ecg_cnn", "--data", "missing.csv"], {}, "missing.csv"),
    ("missing npz", ["resnet", "--data", "missing.npz"], {}, "missing.npz"),
    ("test data of unknown format", ["resnet", "--data", "tests/data/Coffee.npz", "--test-data", "tests/conftest.py"],
     {}, "conftest.py"),
    ("synthetic scale above 1", ["ecg_cnn", "--set", "data.scale=2.0"], {}, "data.scale"),
    ("unknown sampler", ["ecg_cnn", "--set", "sampler.kind=magic", "--set", "data.scale=0.01"], {}, "magic"),
    ("steps not a number", ["resnet", "--set", "train.steps=soon"], {}, "train.steps = 'soon'"),
    ("unknown normalisation", ["resnet", "--set", "preprocess.normalize=minmax"], {}, "preprocess.normalize"),
    ("auto where not allowed", ["resnet", "--set", "model.filters=auto"], {}, "model.filters cannot be \"auto\""),
    ("batch size 0", ["ecg_cnn", "--set", "sampler.batch_size=0"], {}, "sampler.batch_size = 0; expected a whole number >= 1"),
    ("batch size not whole", ["ecg_cnn", "--set", "sampler.batch_size=2.5"], {}, "sampler.batch_size = 2.5; expected a whole number"),
    ("validation split 1.5", ["ecg_cnn", "--set", "data.validation_split=1.5"], {},
     "data.validation_split = 1.5; expected a number >= 0 and < 1"),
    ("negative validation split", ["resnet", "--set", "data.validation_split=-0.1"], {}, "data.validation_split = -0.1"),
    ("test split 0", ["ecg_cnn", "--set", "data.test_split=0"], {}, "data.test_split = 0; expected a number > 0 and < 1"),
    ("learning rate 0", ["ecg_cnn", "--set", "optimizer.learning_rate=0"], {}, "optimizer.learning_rate = 0; expected a number > 0"),
    ("negative weight decay", ["ecg_cnn", "--set", "optimizer.weight_decay=-1"], {}, "optimizer.weight_decay = -1"),
    ("0 epochs", ["ecg_cnn", "--set", "train.epochs=0"], {}, "train.epochs = 0; expected a whole number >= 1"),
    ("reduce-lr factor 1", ["ecg_cnn", "--set", "train.reduce_lr_factor=1.0"], {}, "train.reduce_lr_factor = 1.0"),
    ("steps per execution 0", ["ecg_cnn", "--set", "train.steps_per_execution=0"], {}, "train.steps_per_execution = 0"),
    ("negative seed", ["ecg_cnn", "--set", "train.seed=-3"], {}, "train.seed = -3"),
    ("correlation threshold above 1", ["ecg_cnn", "--set", "preprocess.correlation_threshold=2"], {},
     "preprocess.correlation_threshold = 2"),
    ("stride without window", ["ecg_cnn", "--set", "preprocess.stride=5"], {}, "preprocess.stride = 5 without preprocess.window"),
    ("stride beyond window", ["ecg_cnn", "--set", "preprocess.window=10", "--set", "preprocess.stride=20"], {},
     "preprocess.stride = 20 is larger than preprocess.window = 10"),
    ("not valid TOML", ["bad.toml"], {"bad.toml": lambda p: p.write_text("[train\nepochs = 1\n")}, "bad.toml: not valid TOML"),
    ("single-class training labels", ["resnet", "--data", "one.npz"],
     {"one.npz": lambda p: npz(p, y_train=np.zeros(8, int), y_test=np.zeros(4, int))},
     "one.npz (x_train): every training series is of class '0'; a classifier needs at least 2 classes"),
    ("channel missing over a whole series", ["resnet", "--data", "gap.npz"],
     {"gap.npz": lambda p: npz(p, x_train=channel_missing())},
     "gap.npz (x_train): series 3 (1-based), channel 2 (1-based) is missing (NaN) over its whole length"),
    ("float label 0.5", ["resnet", "--data", "half.npz"],
     {"half.npz": lambda p: npz(p, y_train=np.array([0, 1, 0.5, 1, 0, 1, 0, 1]))},
     "half.npz: y_train[2] is 0.5; expected a whole number or a string"),
    ("float label 0.5 in a heartbeat CSV", ["ecg_cnn", "--data", "beats.csv"], {"beats.csv": heartbeat_csv},
     "beats.csv line 3: label 0.5 is not a class index"),
]


def run_cli(args, cwd):
    """`python -m kseq.experiments.run ARGS` in a fresh process (TensorFlow's start-up included)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "kseq.experiments.run", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def run_main(args, cwd, capsys, monkeypatch):
    """The same command in this process: `kseq.experiments.run.main(ARGS)` run from `cwd`, as
    (exit code, stdout, stderr). For the cases that are about the message and the exit code; the
    process itself (no traceback, no TensorFlow notices, TensorFlow not loaded for bad arguments)
    is checked in fresh processes by test_command_line_in_a_fresh_process and tests/test_cli.py."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        code = run.main(args)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def written(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def command_line_case(args, files, tmp_path, run_command):
    for name, write in files.items():
        write(tmp_path / name)
    (tmp_path / "tests").symlink_to(REPO / "tests")  # the cases that name repository files
    out = tmp_path / "out"
    return run_command([*args, "--output-dir", str(out)], tmp_path), out


def assert_one_error_line(done, message, out):
    assert done.returncode == 2, done.stderr[-2000:]
    # TensorFlow prints start-up notices to stderr that no setting silences; kseq adds one line, last.
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in done.stderr
    assert written(out) == []  # no run folder, finished or partial


@pytest.mark.parametrize("args, files, message", [case[1:] for case in CLI], ids=[case[0] for case in CLI])
def test_command_line(args, files, message, tmp_path, capsys, monkeypatch):
    done, out = command_line_case(args, files, tmp_path,
                                  lambda argv, cwd: run_main(argv, cwd, capsys, monkeypatch))
    assert_one_error_line(done, message, out)


# A case answered after TensorFlow has loaded (the labels are read with it), in a fresh process:
# TensorFlow's start-up notices stay out of stderr, and the error line is still the last line.
FRESH_PROCESS_CASE = "float label 0.5 in a heartbeat CSV"


def test_command_line_in_a_fresh_process(tmp_path):
    (_, args, files, message), = [case for case in CLI if case[0] == FRESH_PROCESS_CASE]
    done, out = command_line_case(args, files, tmp_path, run_cli)
    assert_one_error_line(done, message, out)


def test_a_nan_loss_ends_the_run_and_keeps_earlier_runs(tmp_path, capsys, monkeypatch):
    """Values near float32's limit overflow inside the network: the loss is NaN at the first batch.
    The run ends with one error line; an earlier run's folder stays, and no partial folder is left."""
    x = np.full((8, 12, 2), 3e38)
    x[::2] *= -1
    npz(tmp_path / "huge.npz", x_train=x, x_test=x[:4])
    earlier = tmp_path / "out" / "resnet" / "20260101-000000-seed0-abcdef"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text("{}")
    done = run_main(["resnet", "--data", "huge.npz", "--set", "train.steps=4", "--set", "preprocess.normalize='none'",
                     "--output-dir", str(tmp_path / "out")], tmp_path, capsys, monkeypatch)
    assert done.returncode == 2, done.stderr[-2000:]
    assert re.match(r"error: training loss is nan at epoch 1, batch \d+; expected finite values", done.stderr.strip().splitlines()[-1])
    assert written(tmp_path / "out") == ["resnet", "resnet/20260101-000000-seed0-abcdef",
                                         "resnet/20260101-000000-seed0-abcdef/metrics.json"]


# --- the loaders: `kseq.data.load_datasets` and the file readers ---------------------------------

# (id, writer(tmp_path) -> the [data] table's source and path, the exception's message)
LOADERS = [
    ("npz with test series but no test labels", lambda d: npz(d / "data.npz", y_test=None),
     "missing arrays y_test; found x_test, x_train, y_train"),
    ("npz test series of another length", lambda d: npz(d / "data.npz", x_test=np.zeros((4, 5, 2))),
     "x_train has 12 time steps (T) but x_test has 5"),
    ("npz labels fewer than series", lambda d: npz(d / "data.npz", y_train=np.array([0, 1, 0])),
     "x_train has 8 rows but y_train has shape (3,)"),
    ("npz 4-D series", lambda d: npz(d / "data.npz", x_test=np.zeros((4, 12, 2, 1))),
     "x_test must be a numeric (N, T) or (N, T, F) array"),
    ("npz infinite values", lambda d: npz(d / "data.npz", x_train=np.full((8, 12, 2), np.inf)),
     "x_train has infinite values in rows 0, 1, 2"),
    ("npz test label outside the classes",
     lambda d: npz(d / "data.npz", y_test=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b"])),
     "y_test has labels outside 0..1 (('a', 'b')) at rows 2"),
    ("npz negative label indexing class_names",
     lambda d: npz(d / "data.npz", y_train=np.array([0, -1, 0, 1, 0, 1, 0, 1]), class_names=np.array(["a", "b"])),
     "y_train[1] is -1; expected an index into class_names (0, 1, 2, ...)"),
    ("npz float label 0.5", lambda d: npz(d / "data.npz", y_train=np.array([0, 0.5, 0, 1, 0, 1, 0, 1])),
     "y_train[1] is 0.5; expected a whole number or a string"),
    ("npz label not a class name",
     lambda d: npz(d / "data.npz", y_train=np.array(list("abababax")), y_test=np.array(list("abab")),
                   class_names=np.array(["a", "b"])),
     "y_train has labels 'x' not in class_names ('a', 'b')"),
    ("npz object labels", lambda d: npz(d / "data.npz", y_train=np.array([0, "a", 1, 0, 1, 0, 1, 0], dtype=object)),
     "not a readable .npz of plain arrays"),
    ("npz not a zip", lambda d: (d / "data.npz").write_text("not a zip") and d / "data.npz", "not a readable .npz"),
    ("npz missing", lambda d: d / "gone.npz", "gone.npz: no such file"),
    ("npz single class", lambda d: npz(d / "data.npz", y_train=np.ones(8, int), y_test=np.ones(4, int)),
     "every training series is of class '1'; a classifier needs at least 2 classes"),
    ("npz class with one series", lambda d: npz(d / "data.npz", y_train=np.array([0, 1, 1, 1, 1, 1, 1, 1])),
     "class '0' has only 1 training series"),
    ("npz test class never trained", lambda d: npz(d / "data.npz", y_train=np.array([0, 1] * 4),
                                                   y_test=np.array([0, 1, 2, 2])),
     "class '2' is in the test set but not in the training set"),
    ("npz channels differ", lambda d: npz(d / "data.npz", x_test=np.zeros((4, 12, 3))), "has 2 channels but"),
    ("npz series missing in every channel", lambda d: npz(d / "data.npz", x_train=np.where(
        np.arange(8)[:, None, None] == 4, np.nan, np.ones((8, 12, 2)))),
     "series 5 (1-based) has no values: every channel is missing"),
    ("npz channel missing over a series", lambda d: npz(d / "data.npz", x_train=channel_missing()),
     "series 3 (1-based), channel 2 (1-based) is missing (NaN) over its whole length"),
    ("npz test channel missing over a series", lambda d: npz(d / "data.npz", x_test=channel_missing(4)),
     "(x_test): series 3 (1-based), channel 2 (1-based) is missing"),
    ("heartbeat float label 0.5", lambda d: heartbeat_csv(d / "beats.csv"),
     "beats.csv line 3: label 0.5 is not a class index; expected a whole number in 0..4"),
    ("heartbeat label 7", lambda d: heartbeat_csv(d / "beats.csv", "7"), "beats.csv line 3: label 7.0 is not a class index"),
    ("heartbeat missing", lambda d: d / "nope.csv", "nope.csv: no such file"),
    ("heartbeat empty", lambda d: (d / "empty.csv").write_text("") or d / "empty.csv", "empty.csv: empty file"),
]


@pytest.mark.parametrize("write, message", [case[1:] for case in LOADERS], ids=[case[0] for case in LOADERS])
def test_loader(write, message, tmp_path):
    path = write(tmp_path)
    before = written(tmp_path)
    source = "npz" if path.suffix == ".npz" else "heartbeat_csv"
    data = {**load_config("resnet")["data"], "source": source, "path": str(path)}
    with pytest.raises(InputError) as raised:
        load_datasets(data, seed=0)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert written(tmp_path) == before


def test_the_readers_raise_what_load_datasets_raises(tmp_path):
    for read, path in ((load_npz, npz(tmp_path / "d.npz", y_train=np.array([0, 0.5, 0, 1, 0, 1, 0, 1]))),
                       (load_heartbeat_csv, heartbeat_csv(tmp_path / "b.csv"))):
        with pytest.raises(InputError, match="0.5"):
            read(path)


# --- the estimator: `kseq.SequenceClassifier.fit` ----------------------------------------------

def series(n=16, length=12, channels=1, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, length, channels))
    return x, np.array(["a", "b"] * (n // 2))


def with_nan_channel():
    x, y = series(channels=2)
    x[5, :, 0] = np.nan
    return x, y


def with_gap():
    x, y = series()
    x[3, 4, 0] = np.nan
    return x, y


X, Y = series()
# (id, parameters, fit's arguments, exception type, message)
ESTIMATOR = [
    ("single class", {}, (X, np.full(16, "a")), ValueError, "y has 1 class ('a'); a classifier needs at least 2"),
    ("continuous labels", {}, (X, np.linspace(0, 1, 16)), ValueError, "Unknown label type: continuous"),
    ("NaN label", {}, (X, np.where(np.arange(16) == 3, np.nan, np.arange(16) % 2)), ValueError, "y contains NaN"),
    ("labels fewer than series", {}, (X, Y[:-1]), ValueError, "inconsistent numbers of samples"),
    ("1-D X", {}, (X[:, 0, 0], Y), ValueError, "Reshape your data"),
    ("4-D X", {}, (X[..., None], Y), ValueError, "X must be an (N, T, F) or (N, T) array; got 4 dimensions"),
    ("no series", {}, (X[:0], Y[:0]), ValueError, "0 sample(s)"),
    ("no steps", {}, (X[:, :0, 0], Y), ValueError, "0 feature(s)"),
    ("infinite value", {}, (np.where(X == X.max(), np.inf, X), Y), ValueError, "Input X contains infinity"),
    ("complex values", {}, (X + 1j, Y), ValueError, "Complex data not supported"),
    ("sparse X", {}, (scipy.sparse.csr_matrix(X[:, :, 0]), Y), TypeError, "Sparse data was passed"),
    ("channel missing over a series", {}, with_nan_channel(), ValueError,
     "training data: series 6 (1-based), channel 1 (1-based) is missing (NaN) over its whole length"),
    ("gap with fill_gaps none", {"fill_gaps": "none"}, with_gap(), ValueError,
     "training data: series 4 (1-based), channel 1 has a gap (NaN) at step 5 and preprocess.fill_gaps = 'none'"),
    ("batch size 0", {"batch_size": 0}, (X, Y), ValueError, "sampler.batch_size = 0; expected a whole number >= 1"),
    ("validation split 1.5", {"validation_split": 1.5}, (X, Y), ValueError, "data.validation_split = 1.5"),
    ("learning rate 0", {"learning_rate": 0.0}, (X, Y), ValueError, "optimizer.learning_rate = 0.0"),
    ("unknown sampler", {"sampler": "magic"}, (X, Y), ValueError, "sampler.kind = 'magic'"),
    ("unknown model", {"model": "no_such_model"}, (X, Y), ValueError, "no_such_model"),
    ("unknown model argument", {"model_params": {"nonsense": 1}}, (X, Y), ValueError, "nonsense"),
    ("steps not a number", {"steps": "soon"}, (X, Y), ValueError, "train.steps = 'soon'"),
    ("unknown thresholds", {"thresholds": "best"}, (X, Y), ValueError, "decisions.thresholds = 'best'"),
    ("random_state a string", {"random_state": "seven"}, (X, Y), ValueError, "random_state must be None, an int"),
]
FIT_KEYWORDS = [
    ("all sample weights zero", {}, {"sample_weight": np.zeros(16)}, ValueError, "Sample weights must contain at least one non-zero number"),
    ("negative sample weight", {}, {"sample_weight": -np.ones(16)}, ValueError, "Negative values in data passed to"),
    ("sample weights of another length", {}, {"sample_weight": np.ones(3)}, ValueError, "sample_weight.shape == (3,)"),
    ("sample weights with rejection", {"sampler": "rejection"}, {"sample_weight": np.ones(16)}, ValueError,
     "sample_weight is drawn by the 'weighted' sampler"),
    ("validation labels not in y", {}, {"validation_data": (X, np.full(16, "c"))}, ValueError,
     "validation_data has labels ['c'] that are not in y"),
    ("validation series of another shape", {}, {"validation_data": (X[:, :6], Y)}, ValueError,
     "validation_data has sequences of shape (6, 1); X has (12, 1)"),
]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """`fit`'s temporary folders go here, so the test sees any it leaves behind."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def estimator(**params):
    return SequenceClassifier("fcn", {"filters": [4], "kernel_sizes": [3]}, steps=4, random_state=0).set_params(**params)


@pytest.mark.parametrize("params, args, kind, message", [case[1:] for case in ESTIMATOR],
                         ids=[case[0] for case in ESTIMATOR])
def test_estimator_fit(params, args, kind, message, scratch):
    clf = estimator(**params)
    with pytest.raises(kind) as raised:
        clf.fit(*args)
    assert message in str(raised.value)
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(clf))  # nothing fitted
    assert written(scratch) == []


@pytest.mark.parametrize("params, keywords, kind, message", [case[1:] for case in FIT_KEYWORDS],
                         ids=[case[0] for case in FIT_KEYWORDS])
def test_estimator_fit_keywords(params, keywords, kind, message, scratch):
    clf = estimator(**params)
    with pytest.raises(kind) as raised:
        clf.fit(X, Y, **keywords)
    assert message in str(raised.value)
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(clf))
    assert written(scratch) == []


def test_the_command_line_and_the_estimator_refuse_one_class_alike(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 12, 2))
    npz(tmp_path / "one.npz", x_train=x, y_train=np.zeros(8, int), y_test=np.zeros(4, int))
    data = {**load_config("resnet")["data"], "source": "npz", "path": str(tmp_path / "one.npz")}
    with pytest.raises(InputError, match="a classifier needs at least 2 classes"):
        load_datasets(data, seed=0)
    with pytest.raises(ValueError, match="a classifier needs at least 2 classes"):
        estimator().fit(x, np.zeros(8, int))


def test_at_least_forty_cases():
    assert len(CLI) + len(LOADERS) + len(ESTIMATOR) + len(FIT_KEYWORDS) >= 40

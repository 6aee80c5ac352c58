"""End to end through `python -m kseq.experiments.run`, as a user types it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kseq.experiments import run
from tests.conftest import TINY_ECG


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kseq.experiments.run", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def run_in_process(capsys, *args):
    """`run.main(args)` in this process, as `run_cli` answers it (exit code, stdout, stderr): for the
    end-to-end runs whose assertions are about what the run writes, not about the process's start-up
    (which test_generic_experiment_on_real_data_with_no_other_flag and the import checks below run fresh)."""
    capsys.readouterr()
    code = run.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_list_names_the_experiments():
    done = run_cli("--list")
    assert done.returncode == 0
    assert "ecg_cnn" in done.stdout.split()


# Bad input (one `error:` line, exit 2, nothing written): tests/test_bad_input.py.


@pytest.mark.slow
def test_ecg_cnn_end_to_end_on_a_real_format_csv(tmp_path, capsys):
    """Train on the real Kaggle-format fixture rows plus synthetic minority beats written as CSV."""
    from kseq.data.synthetic import make_heartbeats, write_heartbeat_csv

    train, test = make_heartbeats(scale=0.01, seed=3)
    write_heartbeat_csv(train, tmp_path / "train.csv")
    write_heartbeat_csv(test, tmp_path / "test.csv")
    out = tmp_path / "out"
    tiny = [a for s in TINY_ECG if not s.startswith("data.scale") for a in ("--set", s)]
    done = run_in_process(capsys, "ecg_cnn", "--data", str(tmp_path / "train.csv"),
                          "--test-data", str(tmp_path / "test.csv"), "--output-dir", str(out), "--seed", "1", *tiny)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "macro_f1=" in done.stdout and "accuracy=" in done.stdout
    (run_dir,) = (out / "ecg_cnn").iterdir()
    assert f"run folder: {run_dir}" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sum(v["support"] for v in metrics["per_class"].values()) == len(test)
    assert "seed = 1" in (run_dir / "config.toml").read_text()


TINY_PAIN = ["train.epochs=1", "model.layers=1", "model.units=8", "preprocess.window=80",
             "preprocess.stride=80", "train.verbose=0"]


@pytest.mark.slow
def test_pain_bigru_on_real_format_csv_files(tmp_path, capsys):
    """The pain pipeline from the real long-format files: windows and transform live in the model."""
    from kseq.data.synthetic import write_pain_csv

    paths = write_pain_csv(tmp_path / "pain", seed=2, n_test=30)
    out = tmp_path / "out"
    done = run_in_process(capsys, "pain_bigru", "--data", str(paths["train_features"]),
                          "--labels", str(paths["train_labels"]), "--test-data", str(paths["test_features"]),
                          "--test-labels", str(paths["test_labels"]), "--output-dir", str(out),
                          *[a for s in TINY_PAIN for a in ("--set", s)])
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (out / "pain_bigru").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"no_pain", "low_pain", "high_pain"}
    assert sum(v["support"] for v in metrics["per_class"].values()) == 30
    # A fresh process that imports kseq and nothing of it else loads the model: `import kseq`
    # alone registers its layers (without it, keras refuses the unknown `kseq>` classes).
    load = ("import sys, keras; {}m = keras.saving.load_model(sys.argv[1]); print(m.input_shape)")
    loaded = [subprocess.run([sys.executable, "-c", load.format(prefix), str(run_dir / "model.keras")],
                             capture_output=True, text=True, timeout=300) for prefix in ("import kseq; ", "")]
    assert loaded[0].returncode == 0, loaded[0].stderr[-2000:]
    assert loaded[0].stdout.strip() == "(None, 160, 38)"  # whole raw sequences, all 38 raw columns
    assert loaded[1].returncode != 0 and "kseq" in loaded[1].stderr  # the check can fail
    assert "config.toml" in {p.name for p in run_dir.iterdir()}


def run_cli_tracing_imports(*args):
    """`run_cli` under `python -X importtime`: stderr lists every module the process imported."""
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "kseq.experiments.run", *args],
                          capture_output=True, text=True, timeout=600)


def imported_modules(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize(
    "args",
    [
        ["no_such_experiment"],
        ["resnet", "--set", "train.steps=soon"],
        ["resnet", "--set", "preprocess.normalize=minmax"],
        ["resnet", "--data", "missing.npz"],
        ["resnet", "--data", "tests/data/Coffee.npz", "--test-data", "tests/conftest.py"],
        ["resnet", "--set", "model.filters=auto"],
    ],
)
def test_bad_input_is_answered_before_tensorflow_loads(args):
    done = run_cli_tracing_imports(*args)
    assert done.returncode == 2
    assert "tensorflow" not in imported_modules(done.stderr) and "keras" not in imported_modules(done.stderr)
    others = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert len(others) == 1 and others[0].startswith("error: "), others


@pytest.mark.parametrize("args", [["--list"], ["--help"]])
def test_list_and_help_do_not_load_tensorflow(args):
    done = run_cli_tracing_imports(*args)
    assert done.returncode == 0
    assert "tensorflow" not in imported_modules(done.stderr)


def test_list_names_the_generic_experiments_and_the_inception_time_ensemble():
    names = run_cli("--list").stdout.splitlines()
    assert {"resnet", "fcn", "cnn", "gru", "inception_time"} <= set(names)
    assert "inception_time_ensemble (ensemble)" in names


@pytest.mark.slow
@pytest.mark.parametrize("experiment, dataset", [("resnet", "Chinatown_subset"), ("cnn", "Coffee")])
def test_generic_experiment_on_real_data_with_no_other_flag(experiment, dataset, tmp_path):
    """Real UCR series (tests/data, copied from the archive): tens of series, no tuning flags."""
    import tomllib

    from kseq.data.sources import load_npz

    data = Path(__file__).parent / "data" / f"{dataset}.npz"
    out = tmp_path / "out"
    done = run_cli(experiment, "--data", str(data), "--output-dir", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = [line for line in done.stdout.splitlines() if line.startswith("resolved: ")]
    assert len(resolved) == 1 and "no validation split" in resolved[0]
    # The TensorFlow start-up notices stay out of the output.
    assert "absl::InitializeLog" not in done.stderr and "oneDNN" not in done.stderr
    (run_dir,) = (out / experiment).iterdir()
    config = tomllib.loads((run_dir / "config.toml").read_text())
    assert config["sampler"]["batch_size"] == 2 and config["data"]["validation_split"] == 0
    assert config["train"]["monitor"] == "loss" and isinstance(config["train"]["steps"], int)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _, test = load_npz(data)
    assert sum(v["support"] for v in metrics["per_class"].values()) == len(test)
    assert metrics["accuracy"] >= 0.75  # two balanced classes: chance is 0.5


@pytest.mark.slow
def test_inception_time_ensemble_runs_like_any_experiment(tmp_path, capsys):
    """Five restarts of one recipe on the same data and split, their probabilities averaged."""
    out = tmp_path / "out"
    tiny = ["train.steps=20", "model.depth=1", "model.filters=4", "model.bottleneck_size=4", "train.verbose=0"]
    done = run_in_process(capsys, "inception_time_ensemble",
                          "--data", str(Path(__file__).parent / "data" / "Chinatown_subset.npz"),
                          "--output-dir", str(out), *[a for s in tiny for a in ("--set", s)])
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (out / "inception_time_ensemble").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["vote"] == "soft" and len(metrics["members"]) == 5
    import tomllib

    restarts = [tomllib.loads((Path(m["directory"]) / "config.toml").read_text())["train"]["restart"]
                for m in metrics["members"]]
    assert restarts == [0, 1, 2, 3, 4]
    import keras

    import kseq  # noqa: F401  (registers kseq's layers for loading)

    first, second = (keras.saving.load_model(Path(m["directory"]) / "model.keras") for m in metrics["members"][:2])
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(first.get_weights(), second.get_weights()))

"""kseq.tune: the search space, credential masking, the summary and retrain path, and workers
sharing one study through a journal file and through a real PostgreSQL server."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib

import optuna
import psycopg2
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from kseq import tune
from kseq.cli import tune as tune_cli
from kseq.config import load_config
from kseq.utils.errors import InputError
from kseq.experiments import run
from kseq.training import run_folder
from tests.browser import open_page
from tests.conftest import TINY_ECG
from tests.pg_cluster import PostgresCluster, free_port

TINY_ARGS = [arg for text in TINY_ECG for arg in ("--set", text)]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def test_search_space_becomes_optuna_distributions():
    space = tune.parse_search_space({
        **load_config("ecg_cnn")["search"],
        "preprocess.window": {"low": 20, "high": 80, "step": 20},
    })
    assert space["optimizer.learning_rate"] == FloatDistribution(1e-4, 3e-3, log=True)
    assert space["model.dropout"] == FloatDistribution(0.6, 0.8)
    assert space["optimizer.weight_decay"] == FloatDistribution(1e-4, 1e-3, log=True)
    assert space["loss.gamma"] == CategoricalDistribution([1.0, 2.0, 3.0])
    assert space["preprocess.window"] == IntDistribution(20, 80, step=20)


@pytest.mark.parametrize(
    "key, spec, message",
    [
        ("modle.dropout", {"low": 0.1, "high": 0.5}, "unknown section [modle]"),
        ("dropout", {"low": 0.1, "high": 0.5}, '"section.key"'),
        ("optimizer.lr", {"low": 0.1, "high": 0.5}, "unknown key 'lr' in [optimizer]"),
        ("model.dropout", {"low": 0.1}, "needs both low and high"),
        ("model.dropout", {"low": 0.1, "hi": 0.5}, "unknown field hi"),
        ("model.dropout", {"low": 0.5, "high": 0.1}, "low <= high"),
        ("model.l2", {"low": 0.0, "high": 1e-3, "log": True}, "low > 0"),
        ("model.l2", {"low": 1e-4, "high": 1e-3, "log": "yes"}, "log must be true or false"),
        ("model.dropout", {"low": "a", "high": 0.5}, "must be numbers"),
        ("loss.gamma", {"choices": []}, "non-empty array"),
        ("loss.gamma", {"choices": [1.0], "low": 0.0}, "cannot be combined"),
        ("model.filters", {"choices": [[4, 8], [8, 16]]}, "numbers, strings or booleans"),
        ("model.dropout", 0.5, "expected a table"),
    ],
)
def test_bad_search_entries_name_the_key(key, spec, message):
    with pytest.raises(InputError) as raised:
        tune.parse_search_space({key: spec})
    assert f'"{key}"' in str(raised.value) and message in str(raised.value)


def test_empty_search_table_and_set_of_a_searched_key_are_refused():
    with pytest.raises(InputError, match=r"\[search\]: empty"):
        tune.parse_search_space({})
    space = tune.parse_search_space(load_config("ecg_cnn")["search"])
    with pytest.raises(InputError, match="model.dropout is in"):
        tune.check_overrides(space, ["train.epochs=1", "model.dropout=0.7"])


def test_cli_bad_search_table_is_one_line_exit_2(tmp_path, capsys):
    experiment = tmp_path / "bad.toml"
    experiment.write_text('[model]\nname = "cnn"\n\n[search]\n"model.dropout" = { low = 0.6 }\n')
    assert tune_cli.main([str(experiment), "--trials", "1", "--output-dir", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ['error: [search] "model.dropout": needs both low and high, or choices']
    assert not (tmp_path / "out").exists()


def test_storage_url_password_is_masked():
    url = "postgresql://kseq:s3cr%40t@db.example:5432/studies"
    assert tune.mask_url(url) == "postgresql://kseq:***@db.example:5432/studies"
    assert tune.with_installed_driver(url).endswith("://kseq:s3cr%40t@db.example:5432/studies")


@pytest.mark.parametrize("url", [
    "postgresql://user:secret@127.0.0.1:{port}/db",  # nothing listens there
    "redis://user:secret@127.0.0.1:{port}/0",
    "user:secret@127.0.0.1:{port}",
])
def test_storage_errors_never_print_the_password(url, tmp_path, capsys):
    args = ["ecg_cnn", "--trials", "1", "--output-dir", str(tmp_path), "--storage", url.format(port=free_port())]
    assert tune_cli.main(args) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: --storage") and len(err.strip().splitlines()) == 1, err
    assert "secret" not in out + err


def test_tune_writes_the_summary_and_retrains_with_best_params(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["ecg_cnn", "--trials", "2", "--output-dir", str(out), *TINY_ARGS, "--set", "train.epochs=2"]
    assert tune_cli.main(args) == 0
    printed = capsys.readouterr().out
    summary = out / "ecg_cnn" / "tune-ecg_cnn"
    assert f"summary: {summary}" in printed and "best val_macro_f1: " in printed

    trials = optuna.load_study(study_name="ecg_cnn", storage=tune.open_storage(None, out / "ecg_cnn", 60, 0)[0]).trials
    assert len(trials) == 2
    # MedianPruner never prunes the first trials, so both ran to the end and left a run folder.
    assert all(t.state == TrialState.COMPLETE for t in trials)
    run_dirs = {str(metrics.parent) for metrics in (out / "ecg_cnn").glob("*/metrics.json")}
    assert {t.user_attrs["run_dir"] for t in trials} == run_dirs
    best = json.loads((summary / "best_params.json").read_text())
    assert set(best) == {"optimizer.learning_rate", "model.dropout", "optimizer.weight_decay", "loss.gamma"}
    assert (summary / "trials.csv").read_text().count("\n") == 3  # header + 2 trials
    assert (summary / "optimization_history.png").stat().st_size > 1000
    assert (summary / "param_importances.png").exists() == (len({t.value for t in trials}) > 1)
    page = (summary / "report.html").read_text()
    best_trial = max(trials, key=lambda t: t.value)
    assert f"{best_trial.value:.4f}" in page and best_trial.user_attrs["run_dir"] in page
    seen = open_page(summary / "report.html", tmp_path / "study.png")
    assert seen["errors"] == [] and len(seen["images"]) == len(list(summary.glob("*.png"))) >= 1
    assert all(image["complete"] and image["width"] > 100 for image in seen["images"])

    assert run.main(["ecg_cnn", "--output-dir", str(tmp_path / "retrain"), "--params",
                     str(summary / "best_params.json"), *TINY_ARGS]) == 0
    (run_dir,) = (tmp_path / "retrain" / "ecg_cnn").iterdir()
    config = tomllib.loads((run_dir / "config.toml").read_text())
    for key, value in best.items():
        section, name = key.split(".")
        assert config[section][name] == value


class Worker:
    """`python -m kseq.cli.tune ecg_cnn ...` in its own process with one TF thread, output to a file."""

    def __init__(self, out, *args):
        env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
        out.mkdir(parents=True, exist_ok=True)
        self.log = out / f"worker-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "kseq.cli.tune", "ecg_cnn", "--output-dir", str(out), *args, *TINY_ARGS]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid

    def finish(self, timeout=400) -> str:
        """Wait for the worker to exit; its output."""
        self.process.wait(timeout=timeout)
        return self.log.read_text()


@pytest.fixture
def start_worker(tmp_path):
    """Start workers writing under `tmp_path`; kill any still running when the test ends."""
    started = []

    def start(*args) -> Worker:
        started.append(Worker(tmp_path, *args))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def workers_of(trials) -> set[int]:
    return {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials}


def assert_trials_add_up(trials, asked):
    assert len(trials) == asked
    assert sorted(t.number for t in trials) == list(range(asked))
    assert sum(t.state in FINISHED for t in trials) == asked, [t.state for t in trials]


@pytest.mark.slow
def test_two_workers_share_a_journal_file(start_worker, tmp_path):
    workers = [start_worker("--trials", "1", "--study", "journal") for _ in range(2)]
    for worker in workers:
        output = worker.finish()
        assert worker.process.returncode == 0, output[-3000:]
    storage = tune.open_storage(None, tmp_path / "ecg_cnn", 60, 0)[0]
    trials = optuna.load_study(study_name="journal", storage=storage).trials
    assert_trials_add_up(trials, 2)
    assert workers_of(trials) == {w.pid for w in workers}


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server for this module, with password authentication over TCP."""
    cluster = PostgresCluster(password="secret")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.mark.slow
def test_workers_opening_an_empty_database_together_all_connect(postgres):
    """Optuna's table creation races (optuna/optuna#1092); every worker must still get a storage."""
    url = postgres.create_database("race")
    barrier, opened = threading.Barrier(4), []

    def open_storage():
        barrier.wait()
        opened.append(tune.open_storage(url, None, 60, 0)[1])

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [f"postgresql://postgres:***@127.0.0.1:{postgres.port}/race"] * 4


def load_rdb_study(url, name):
    return optuna.load_study(study_name=name, storage=tune.with_installed_driver(url))


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(postgres, start_worker):
    url = postgres.create_database("concurrent")
    workers = [start_worker("--trials", "2", "--storage", url, "--study", "shared") for _ in range(2)]
    for worker in workers:
        output = worker.finish()
        assert worker.process.returncode == 0, output[-3000:]
        assert f"study shared in postgresql://postgres:***@127.0.0.1:{postgres.port}/concurrent" in output
        assert "secret" not in output
    trials = load_rdb_study(url, "shared").trials
    assert_trials_add_up(trials, 4)
    assert workers_of(trials) == {w.pid for w in workers}


def wait_for_running_trial(url, study, pid, timeout=300):
    """The number of the first RUNNING trial of worker `pid`, polled from the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for trial in load_rdb_study(url, study).get_trials(states=(TrialState.RUNNING,)):
                if trial.user_attrs.get("worker", "").endswith(f":{pid}"):
                    return trial.number
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"worker {pid} started no trial in {timeout} s")


def wait_for_params(url, study, number, timeout=300):
    """Wait until trial `number` has a value for every key of `ecg_cnn`'s search space: a worker
    records its trial (and starts its heartbeat) before it suggests them, and a retry repeats only
    the parameters its failed trial had."""
    from kseq.config import load_config
    from kseq.tune import parse_search_space

    keys = set(parse_search_space(load_config("ecg_cnn")["search"]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(load_rdb_study(url, study).trials[number].params) == keys:
            return
        time.sleep(0.2)
    raise TimeoutError(f"trial {number}: not every parameter suggested in {timeout} s")


def wait_for_heartbeat(url, number, *, stale_after=None, timeout=300):
    """Wait until trial `number` has a heartbeat on record (or, with `stale_after` seconds, until
    its last heartbeat is older than that: Optuna's test, on the database's own clock)."""
    age = "true" if stale_after is None else f"max(h.heartbeat) < LOCALTIMESTAMP - interval '{stale_after} seconds'"
    query = (f"SELECT count(*) > 0 AND {age} FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
             "WHERE t.number = %s")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(query, (number,))
            if cursor.fetchone()[0]:
                return
        time.sleep(0.2)
    raise TimeoutError(f"trial {number}: no {'stale ' if stale_after else ''}heartbeat in {timeout} s")


@pytest.mark.slow
def test_a_killed_worker_trial_fails_by_heartbeat_and_is_retried(postgres, start_worker):
    url = postgres.create_database("killed")
    common = ["--storage", url, "--study", "killed", "--heartbeat", "1", "--retries", "1"]
    doomed = start_worker("--trials", "2", *common)
    killed = wait_for_running_trial(url, "killed", doomed.pid)
    wait_for_params(url, "killed", killed)
    wait_for_heartbeat(url, killed)  # mid-trial, with a heartbeat on record
    doomed.process.send_signal(signal.SIGKILL)
    doomed.finish()
    wait_for_heartbeat(url, killed, stale_after=2)  # silent for twice --heartbeat: stale
    survivor = start_worker("--trials", "1", *common)
    output = survivor.finish()
    assert survivor.process.returncode == 0, output[-3000:]

    # The survivor starts once the killed trial is stale, so its first trial finds it, fails
    # it, and runs it again.
    trials = load_rdb_study(url, "killed").trials
    assert_trials_add_up(trials, 2)  # one asked by each worker
    assert trials[killed].state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("retry_history") == [killed]]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == trials[killed].params
    assert workers_of([retry]) == {survivor.pid}


def test_pruned_trial_leaves_no_partial_run_for_resume(tmp_path):
    """A pruned run is over, not interrupted: `run --resume` must not find it."""
    import optuna

    from kseq.tune import make_objective, parse_search_space
    from tests.conftest import TINY_ECG

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    space = parse_search_space({"model.dropout": {"low": 0.6, "high": 0.8}})
    study.optimize(make_objective("ecg_cnn", TINY_ECG, space, tmp_path), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert not list((tmp_path / "ecg_cnn").glob(".partial-*"))


class _FailingTrialCallback:
    """Stands in for the pruning callback: the trial's training fails after its first epoch."""

    def __new__(cls, trial, monitor):
        import keras

        class Fail(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                raise RuntimeError("trial failed mid-training")

        return Fail()


def test_failed_trial_leaves_no_partial_run_for_resume(tmp_path, monkeypatch):
    """A trial that fails is over too: its folder must not become `run --resume`'s "last interrupted run"."""
    from kseq.tune import make_objective, parse_search_space

    monkeypatch.setattr(tune, "KerasPruningCallback", _FailingTrialCallback)
    study = optuna.create_study(direction="maximize")
    space = parse_search_space({"model.dropout": {"low": 0.6, "high": 0.8}})
    study.optimize(make_objective("ecg_cnn", TINY_ECG, space, tmp_path), n_trials=1, catch=(RuntimeError,))
    assert study.trials[0].state == TrialState.FAIL
    assert (tmp_path / "ecg_cnn").is_dir()  # the trial did start its run folder
    assert not list((tmp_path / "ecg_cnn").glob(".partial-*"))


def test_resume_never_picks_a_trial_folder_left_by_a_killed_worker(tmp_path):
    """A killed worker cannot clean up; `latest_partial` must skip its trial's folder, even a newer one."""

    config = load_config("ecg_cnn", TINY_ECG)
    interrupted = run_folder.start_run(tmp_path, "ecg_cnn", config, "20250101-000000-seed0-aaaaaa")
    trial = run_folder.start_run(tmp_path, "ecg_cnn", config, run_folder.trial_run_id(0, 3))  # newer, from a trial
    assert trial.name > interrupted.name
    assert run_folder.latest_partial(tmp_path, "ecg_cnn") == interrupted

"""Hyperparameter search with Optuna over an experiment's `[search]` table.

The command line is `python -m kseq.cli.tune EXPERIMENT --trials N [--storage URL] [--study NAME]
[--set section.key=value]`; this module is the library (`tune(...)`).

Every trial is an ordinary run (`kseq.training.trainer.train`) with the sampled values applied, scored by
its best validation macro-F1 and pruned epoch by epoch against the median of earlier trials.
Workers share a study through Optuna's own storage: a journal file under `--output-dir` on one
host, or a PostgreSQL/MySQL URL across machines, where heartbeats fail (and retry) the trials of
a worker that died. Each worker, when it finishes, rewrites `tune-<study>/` with the study's best
params, all its trials, two plots and a `report.html`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib.pyplot as plt
import optuna
import pandas as pd
import sqlalchemy.exc
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances
from optuna_integration import KerasPruningCallback
from sqlalchemy.engine import make_url

from kseq.config import DEFAULTS, FREE_FORM, check_tuning, load_config, parse_override
from kseq.reporting import html_report
from kseq.training import run_folder, trainer
from kseq.utils.errors import InputError
from kseq.utils.files import write_atomically, write_text

OBJECTIVE = "val_macro_f1"
SEARCHABLE = tuple(s for s in DEFAULTS if s not in ("experiment", "search"))
RANGE_FIELDS = {"low", "high", "log", "step"}
RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
SCHEMA_ATTEMPTS = 5  # connections tried while other workers create Optuna's tables


def parse_search_space(search: dict) -> dict[str, BaseDistribution]:
    """The `[search]` table as Optuna distributions keyed by "section.key"."""
    if not search:
        raise InputError('[search]: empty; add entries such as "model.dropout" = { low = 0.5, high = 0.8 }')
    return {key: _distribution(key, spec) for key, spec in search.items()}


def _check_key(key: str) -> None:
    section, _, name = key.partition(".")
    if not name:
        raise InputError(f'[search] "{key}": expected a quoted "section.key", e.g. "model.dropout"')
    if section not in SEARCHABLE:
        raise InputError(f'[search] "{key}": unknown section [{section}]; expected one of {", ".join(SEARCHABLE)}')
    if section not in FREE_FORM and name not in DEFAULTS[section]:
        raise InputError(f'[search] "{key}": unknown key {name!r} in [{section}]; expected one of '
                         f'{", ".join(DEFAULTS[section])}')


def _distribution(key: str, spec) -> BaseDistribution:
    """One entry: `{ choices = [...] }`, or `{ low, high }` with optional `log` and `step`."""
    _check_key(key)
    where = f'[search] "{key}"'
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a table, {{ low = ..., high = ... }} or {{ choices = [...] }}")
    unknown = set(spec) - RANGE_FIELDS - {"choices"}
    if unknown:
        raise InputError(f"{where}: unknown field {', '.join(sorted(unknown))}; "
                         "expected low, high, log, step or choices")
    if "choices" in spec:
        return _categorical(where, spec)
    if "low" not in spec or "high" not in spec:
        raise InputError(f"{where}: needs both low and high, or choices")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not all(_is_number(v) for v in (low, high, step) if v is not None):
        raise InputError(f"{where}: low, high and step must be numbers")
    if not isinstance(log, bool):
        raise InputError(f"{where}: log must be true or false")
    try:
        if all(isinstance(v, int) for v in (low, high, step) if v is not None):
            return IntDistribution(low, high, log=log, step=step or 1)
        return FloatDistribution(low, high, log=log, step=step)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def _categorical(where: str, spec: dict) -> CategoricalDistribution:
    if set(spec) & RANGE_FIELDS:
        raise InputError(f"{where}: choices cannot be combined with low, high, log or step")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise InputError(f"{where}: choices must be a non-empty array")
    if not all(isinstance(c, (bool, int, float, str)) for c in choices):
        raise InputError(f"{where}: choices must be numbers, strings or booleans")
    return CategoricalDistribution(choices)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_overrides(space: dict, overrides) -> None:
    """Refuse a `--set` of a searched key: it would silently replace every trial's sampled value."""
    for text in overrides:
        section, key, _ = parse_override(text)
        if f"{section}.{key}" in space:
            raise InputError(f"--set {text}: {section}.{key} is in [search]; drop one of the two")


def suggest(trial: optuna.Trial, key: str, distribution: BaseDistribution):
    """Sample `key` from its distribution through the trial's public suggest API."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(key, distribution.choices)
    suggest_range = trial.suggest_int if isinstance(distribution, IntDistribution) else trial.suggest_float
    return suggest_range(key, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def worker_id() -> str:
    """`host:pid`, recorded on every trial so a study shows which worker ran what."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_objective(experiment: str, overrides, space: dict, output_dir):
    """The trial function: train with the sampled params, return the run's best validation macro-F1."""

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        params = {key: suggest(trial, key, distribution) for key, distribution in space.items()}
        config = load_config(experiment, overrides, params)
        keras.utils.clear_session(free_memory=True)  # one process trains many models
        run_id = run_folder.trial_run_id(config["train"]["seed"], trial.number)
        try:
            # optuna_integration's callback subclasses `keras.callbacks.Callback`, so it works with Keras 3.
            run = trainer.train(config, output_dir, callbacks=[KerasPruningCallback(trial, OBJECTIVE)],
                                 run_id=run_id)
        except BaseException:
            # A pruned or failed trial is over, not interrupted (tuning never resumes a trial):
            # leave nothing behind for `run --resume` to pick up.
            shutil.rmtree(run_folder.partial_dir(output_dir, config["experiment"]["name"], run_id), ignore_errors=True)
            raise
        trial.set_user_attr("run_dir", str(run.directory))
        return float(pd.Series(run.history[OBJECTIVE]).max())

    return objective


def mask_url(url: str) -> str:
    """The storage URL with its password replaced by `***`, safe to print."""
    return make_url(url).render_as_string(hide_password=True)


def storage_error(url: str, error: Exception) -> InputError:
    """A storage failure as an InputError that names the masked URL and never the password."""
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    password = make_url(url).password
    if password:
        detail = detail.replace(str(password), "***")
    return InputError(f"--storage {mask_url(url)}: {detail}")


def with_installed_driver(url: str) -> str:
    """A bare `postgresql://` URL pinned to whichever of psycopg (3) or psycopg2 is installed.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3 and 2.0 as psycopg2; either works.
    """
    parsed = make_url(url)
    if parsed.drivername != "postgresql":
        return url
    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver):
            return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    return url


def open_storage(url: str | None, folder: Path, heartbeat: int, retries: int) -> tuple[BaseStorage, str]:
    """Optuna storage and a printable description: a journal file in `folder`, or the database at `url`."""
    if url is None:
        folder.mkdir(parents=True, exist_ok=True)
        journal = folder / "optuna-journal.log"
        return JournalStorage(JournalFileBackend(str(journal))), f"journal file {journal}"
    try:
        scheme = make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        # Unparsed, the text could hold a password anywhere: name the flag, not the value.
        raise InputError("--storage: not a database URL; expected e.g. postgresql://user@host/database") from None
    if scheme not in RDB_SCHEMES:
        raise InputError(f"--storage {mask_url(url)}: expected a postgresql://, mysql:// or sqlite:/// URL")
    try:
        return _rdb_storage(with_installed_driver(url), heartbeat, retries), mask_url(url)
    except ImportError as e:
        raise InputError(f"--storage {mask_url(url)}: {e} (no database driver for {scheme})") from None


def _rdb_storage(url: str, heartbeat: int, retries: int) -> RDBStorage:
    """RDBStorage with heartbeats; stale trials are failed, then retried up to `retries` times."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url, heartbeat_interval=heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=retries),
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting together on an empty database race to create Optuna's tables
            # (optuna/optuna#1092); the loser finds them in place on a later try.
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(1)


def write_summary(study: optuna.Study, folder: Path) -> list[str]:
    """Write `trials.csv`, `best_params.json`, plots and `report.html` to `folder`; return notes on what was skipped.

    Every worker rewrites the summary when it finishes, each file through a uniquely named
    temporary file and a rename: a reader never sees half a file, and the last worker to finish
    leaves the summary of the whole study.
    """
    folder.mkdir(parents=True, exist_ok=True)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    write_atomically(folder / "trials.csv", lambda path: study.trials_dataframe().to_csv(path, index=False))
    notes = _write_best(study, folder, completed)
    best = study.best_trial if completed else None
    write_text(folder / "report.html", html_report.render_study(
        folder, study.study_name, study.trials_dataframe(), best and {
            "value": best.value, "number": best.number, "params": best.params,
            "run_dir": best.user_attrs.get("run_dir", "")}))
    return notes


def _write_best(study: optuna.Study, folder: Path, completed) -> list[str]:
    """`best_params.json` and the plots, once a trial has completed; notes on what was skipped."""
    if not completed:
        return ["no completed trial yet: best_params.json and plots skipped"]
    best = json.dumps(study.best_params, indent=2) + "\n"
    write_atomically(folder / "best_params.json", lambda path: path.write_text(best))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        _save_plot(plot_optimization_history(study), folder / "optimization_history.png")
        # fANOVA importances need values that vary, over at least two parameters.
        if len({t.value for t in completed}) < 2 or len(study.best_params) < 2:
            return ["param_importances.png skipped: needs 2 completed trials with different values and 2 parameters"]
        _save_plot(plot_param_importances(study), folder / "param_importances.png")
    return []


def _save_plot(axes, path: Path) -> None:
    write_atomically(path, lambda tmp: axes.figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(axes.figure)


def tune(experiment: str, trials: int, *, storage: str | None = None, study: str | None = None,
         timeout: float | None = None, output_dir="saved_models", heartbeat: int = 60, retries: int = 2,
         overrides=()) -> tuple[optuna.Study, Path]:
    """Run this worker's `trials` of the study, then rewrite the study's summary folder.

    `storage` is a database URL shared by every worker (default: a journal file under
    `output_dir`); `study` names the study (default: the experiment's name); `timeout` stops
    starting new trials after that many seconds; `overrides` (`section.key=value`) apply to every
    trial. Returns the study and its summary folder.
    """
    check_tuning(trials, timeout, heartbeat, retries)
    config = load_config(experiment, overrides)
    space = parse_search_space(config["search"])
    check_overrides(space, overrides)
    name = config["experiment"]["name"]
    folder = Path(output_dir) / name
    optuna_storage, where = open_storage(storage, folder, heartbeat, retries)
    study_name = study or name
    print(f"study {study_name} in {where}; worker {worker_id()}", flush=True)
    found = optuna.create_study(
        study_name=study_name, storage=optuna_storage, direction="maximize", load_if_exists=True,
        # constant_liar keeps parallel workers from sampling next to each other's running trials.
        sampler=optuna.samplers.TPESampler(constant_liar=True), pruner=optuna.pruners.MedianPruner(),
    )
    found.optimize(make_objective(experiment, overrides, space, output_dir), n_trials=trials, timeout=timeout)
    summary = folder / f"tune-{study_name}"
    for note in write_summary(found, summary):
        print(note)
    return found, summary

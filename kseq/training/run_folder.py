"""The run folder: `saved_models/<experiment>/<run-id>/`, written whole under a temporary name.

`saved_models/<experiment>/.partial-<run-id>/` holds a run while it trains (with its
`BackupAndRestore` state, so an interrupted run can be resumed); `finalize` renames it to
`<run-id>/` in one step, so a run folder appears whole or not at all and never replaces another.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from kseq.config import dump_config
from kseq.models.decision import Decision
from kseq.reporting import html_report, plots
from kseq.serving.export import write_model
from kseq.utils.files import PARTIAL_PREFIX, publish, write_json, write_text

_TRIAL_RUN = re.compile(r"-trial\d+$")  # how the run id of a tuning trial ends (`trial_run_id`)


def new_run_id(seed: int) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}-{secrets.token_hex(3)}"


def trial_run_id(seed: int, number: int) -> str:
    """The run id of tuning trial `number`: recognisable, so `latest_partial` never resumes it."""
    return f"{new_run_id(seed)}-trial{number}"


def partial_dir(output_dir, experiment: str, run_id: str) -> Path:
    """Where run `run_id` of `experiment` lives while it trains."""
    return Path(output_dir) / experiment / f"{PARTIAL_PREFIX}{run_id}"


def start_run(output_dir, experiment: str, config: dict, run_id: str | None = None) -> Path:
    """Create the partial folder of a new run and write its resolved `config.toml` there."""
    partial = partial_dir(output_dir, experiment, run_id or new_run_id(config["train"]["seed"]))
    partial.mkdir(parents=True)
    write_text(partial / "config.toml", dump_config(config))
    return partial


def latest_partial(output_dir, experiment: str) -> Path | None:
    """The most recent interrupted run of `experiment`, if any.

    Tuning trials' folders are never candidates: a pruned or failed trial is over, not
    interrupted, and one whose worker was killed belongs to the study (which reruns it), not
    to `run --resume`.
    """
    runs = sorted(p for p in (Path(output_dir) / experiment).glob(f"{PARTIAL_PREFIX}*")
                  if not _TRIAL_RUN.search(p.name))
    return runs[-1] if runs else None


def finalize(partial: Path) -> Path:
    """Rename the finished partial folder to its run id; never replaces an existing folder."""
    return publish(partial, partial.with_name(partial.name.removeprefix(PARTIAL_PREFIX)))


def write_run(partial: Path, model: keras.Model, metrics: dict, history: dict, class_names,
              decision: Decision | None = None) -> Path:
    """Write a finished run's model, SavedModel, metrics, plots and `report.html`, drop its resume
    state, rename. `decision` (`kseq.serving.decisions`) goes into the SavedModel, not `model.keras`."""
    write_model(partial, model, class_names, decision)
    write_json(partial / "metrics.json", metrics)
    plots.plot_history(history, partial / "plots" / "training_curves.png")
    plots.plot_confusion_matrix(np.array(metrics["confusion_matrix"]), class_names,
                                partial / "plots" / "confusion_matrix.png")
    if metrics.get("calibration", {}).get("fitted"):
        plots.plot_reliability(metrics["calibration"], partial / "plots" / "reliability.png")
    shutil.rmtree(partial / "backup", ignore_errors=True)
    write_text(partial / "report.html", html_report.render(partial))
    return finalize(partial)

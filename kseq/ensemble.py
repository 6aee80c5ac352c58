"""Ensembles: finished runs vote, are evaluated side by side, and are served as one SavedModel.

```
python -m kseq.ensemble RUN_DIR RUN_DIR [...]                  # vote over finished runs
python -m kseq.ensemble --train pain_bigru pain_lstm [...]     # train each named experiment, then vote
python -m kseq.ensemble --experiment pain_ensemble             # a named ensemble (members + vote)
```
Options: `--vote majority|soft`, `--data/--labels/--test-data/--test-labels` (evaluate on these
files; with `--train`, also train on them), `--seed N` and `--set section.key=value` (for the
members `--train`/`--experiment` trains), `--output-dir DIR`, `--export DIR`.

`majority`: every member votes its argmax; a tie goes to the tied class with the highest summed
probability; the ensemble's probabilities are the vote shares, the tie-break winner given an extra
thousandth of a vote so that argmax is the decision. `soft`: the mean of the members'
probabilities. The ensemble is one Keras model (`build_ensemble`) outputting log-probabilities,
so like every kseq model its softmax gives probabilities. Every member and the ensemble are
evaluated on the same test split: the one the members' configs describe (rebuilt with
`kseq.training.trainer.prepare_data`), or the files on the command line. The report goes to a new folder
`<output-dir>/<ensemble-name>/<id>/` (name `ensemble` unless a named ensemble), written whole or
not at all: `ensemble.toml` (members, vote, test data), `metrics.json` (`kseq.reporting.evaluation.report`
of the ensemble plus `members`, each member's folder and metrics), `model.keras` (load it after
`import kseq`), `plots/confusion_matrix.png` and `report.html`. As for a run, the `[decisions]`
of the members' config are fitted on the validation split their config describes (per-class
offsets on the vote's log-probabilities; temperature scaling for a soft vote only, since a
majority vote's shares are not logits) and reported in `metrics.json`. `--export DIR` writes the
ensemble as one TF SavedModel at DIR, with a run's serving signature and the fitted decision,
under a temporary name and then renamed.

Members must agree on what one serving input means: the input shape `(T, F)`, the class names and
gap filling (`preprocess.fill_gaps`, applied before the model). The rest of `[preprocess]` and all
of `[model]` may differ: each `model.keras` holds its own fitted transform and windows and takes
raw sequences. Unless test files are given, members must also agree on `[data]` and `train.seed`,
which fix the test split.

A named ensemble is `kseq/experiments/configs/ensembles/<name>.toml` (or any TOML path) with
`vote` and `members`: named experiments or TOML configs, or tables `{experiment = ..., set = [...]}`
with per-member overrides; command-line `--set` applies after them.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import secrets
import sys
from importlib import resources
from pathlib import Path

import keras
import numpy as np
from keras import ops

from kseq.serving import decisions, export
from kseq.reporting import evaluation, html_report, plots
from kseq.config import dump_config, load_config
from kseq.utils.errors import InputError
from kseq.models.voting import VOTE_LAYERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUN_FILES = ("config.toml", "model.keras", "metrics.json")
ENSEMBLE_DIR = resources.files("kseq.experiments") / "configs" / "ensembles"
VOTES = tuple(VOTE_LAYERS)


@dataclasses.dataclass
class Member:
    """One finished run taking part in an ensemble."""

    directory: Path
    config: dict
    class_names: tuple[str, ...]
    model: keras.Model


@dataclasses.dataclass
class Ensemble:
    """An evaluated ensemble: its folder, metrics, Keras model and test-split predictions."""

    directory: Path
    metrics: dict
    model: keras.Model
    y_true: np.ndarray
    member_probabilities: np.ndarray  # (M, N, C)
    probabilities: np.ndarray  # (N, C)
    decision: keras.layers.Layer | None = None  # fitted on the validation split; None without one


def load_member(directory) -> Member:
    """A run folder's config, class names and model (preprocessing inside it)."""
    directory = Path(directory)
    missing = [name for name in RUN_FILES if not (directory / name).is_file()]
    if missing:
        raise InputError(f"{directory}: not a run folder (no {', '.join(missing)})")
    try:
        class_names = tuple(json.loads((directory / "metrics.json").read_text())["class_names"])
    except (json.JSONDecodeError, KeyError) as e:
        raise InputError(f"{directory}: metrics.json has no readable class_names ({e})") from None
    config = load_config(str(directory / "config.toml"))
    return Member(directory, config, class_names, keras.saving.load_model(directory / "model.keras"))


def load_members(directories) -> list[Member]:
    """Load every run; models are renamed `member<i>_<experiment>` so their names are unique."""
    members = [load_member(d) for d in directories]
    if len(members) < 2:
        raise InputError(f"an ensemble needs at least two members; got {len(members)}")
    for i, member in enumerate(members, start=1):
        member.model.name = f"member{i}_{member.config['experiment']['name']}"
    return members


def gap_filling(config: dict) -> tuple:
    """The preprocessing applied before the model: it must be the same for every member."""
    pre = config["preprocess"]
    return pre["fill_gaps"], pre["spline_order"] if pre["fill_gaps"] == "spline" else None


def check_configs(configs: list[dict], names: list[str], same_test_split: bool = True) -> None:
    """Members must fill gaps alike and, unless test files are given, share `[data]` and seed."""
    first, first_name = configs[0], names[0]
    for config, name in zip(configs[1:], names[1:]):
        if gap_filling(config) != gap_filling(first):
            raise InputError(f"member {name}: gap filling {gap_filling(config)} differs from "
                             f"{gap_filling(first)} of member {first_name}")
        if not same_test_split:
            continue
        for key in sorted(set(config["data"]) | set(first["data"])):
            if config["data"].get(key) != first["data"].get(key):
                raise InputError(f"member {name}: data.{key} = {config['data'].get(key)!r} differs from "
                                 f"{first['data'].get(key)!r} of member {first_name}")
        if config["train"]["seed"] != first["train"]["seed"]:
            raise InputError(f"member {name}: train.seed = {config['train']['seed']} differs from "
                             f"{first['train']['seed']} of member {first_name}, so their test splits "
                             "differ (give --data/--test-data to evaluate on files)")


def check_members(members: list[Member], same_test_split: bool = True) -> None:
    """Members must agree on input shape and class names, and their configs as `check_configs`."""
    first = members[0]
    for member in members[1:]:
        if member.model.input_shape[1:] != first.model.input_shape[1:]:
            raise InputError(f"member {member.directory}: input shape {member.model.input_shape[1:]} "
                             f"differs from {first.model.input_shape[1:]} of member {first.directory}")
        if member.class_names != first.class_names:
            raise InputError(f"member {member.directory}: class names {list(member.class_names)} "
                             f"differ from {list(first.class_names)} of member {first.directory}")
    check_configs([m.config for m in members], [str(m.directory) for m in members], same_test_split)


def build_ensemble(models: list[keras.Model], vote: str = "majority", name: str = "ensemble") -> keras.Model:
    """Raw sequences -> every member -> the vote, as one Functional model outputting log-probabilities."""
    if vote not in VOTE_LAYERS:
        raise InputError(f"vote: expected one of {', '.join(VOTES)}; got {vote!r}")
    inputs = keras.Input(models[0].input_shape[1:], name="sequence")
    outputs = VOTE_LAYERS[vote](name="vote")([model(inputs) for model in models])
    return keras.Model(inputs, outputs, name=name)


def predict_proba(model: keras.Model, x, batch_size: int = 256) -> np.ndarray:
    """Probabilities (N, C) of any kseq model (a run's or an ensemble's): softmax of its output."""
    return softmax(model.predict(x, batch_size=batch_size, verbose=0))


def softmax(logits) -> np.ndarray:
    return keras.ops.convert_to_numpy(ops.softmax(ops.convert_to_tensor(logits), axis=-1))


def apply_data_files(config: dict, data=None, labels=None, test_data=None, test_labels=None) -> dict:
    """`config` with the command line's data files in its `[data]` section, as `kseq.experiments.run`."""
    from kseq.config import infer_source

    if test_data and not data:
        raise InputError("--test-data needs --data (the training file the configs' preprocessing was fitted on)")
    if data:
        source = infer_source(data, labels, config["data"]["source"])
        config["data"].update(path=data, labels=labels or "", source=source,
                              test_path=test_data or "", test_labels=test_labels or "")
    return config


def evaluate(members: list[Member], vote: str = "majority", output_dir="saved_models", name: str = "ensemble",
             data_files: dict | None = None) -> Ensemble:
    """Evaluate every member and the vote on one test split and write the ensemble folder.

    `data_files` (keys data, labels, test_data, test_labels) replaces the members' test split.
    """
    from kseq.training.trainer import prepare_data

    data_files = data_files or {}
    check_members(members, same_test_split=not data_files.get("data"))
    config = apply_data_files(copy.deepcopy(members[0].config), **data_files)
    splits = prepare_data(config)
    val_set, test_set = splits.validation, splits.test
    shape = members[0].model.input_shape[1:]
    if test_set.class_names != members[0].class_names or test_set.x.shape[1:] != shape:
        raise InputError(f"test data: classes {list(test_set.class_names)} and shape {test_set.x.shape[1:]} "
                         f"do not match the members' {list(members[0].class_names)} and {shape}")
    model = build_ensemble([m.model for m in members], vote, name=name)
    logits, log_probabilities = vote_outputs(members, model, test_set.x)
    probabilities = softmax(log_probabilities)
    member_probabilities = np.stack([softmax(z) for z in logits])
    metrics = evaluation.report(test_set.y, probabilities, test_set.class_names)
    val_outputs = None if val_set is None else vote_outputs(members, model, val_set.x)[1]
    decision, fitted = decisions.decide(val_outputs, None if val_set is None else val_set.y, log_probabilities,
                                        test_set.y, test_set.class_names, config["decisions"])
    metrics.update(fitted)
    metrics["vote"] = vote
    metrics["members"] = [
        {"directory": str(m.directory), "experiment": m.config["experiment"]["name"],
         "model": m.config["model"]["name"], "metrics": evaluation.report(test_set.y, p, test_set.class_names)}
        for m, p in zip(members, member_probabilities)
    ]
    recipe = {"vote": vote, "members": [str(m.directory) for m in members], "seed": config["train"]["seed"],
              "data": config["data"]}
    directory = write_folder(output_dir, name, recipe, metrics, model, test_set.class_names)
    return Ensemble(directory, metrics, model, test_set.y, member_probabilities, probabilities, decision)


def vote_outputs(members: list[Member], model: keras.Model, x) -> tuple[list[np.ndarray], np.ndarray]:
    """Every member's logits on `x` and the ensemble's vote (log-probabilities, `model`'s output)."""
    logits = [m.model.predict(x, batch_size=m.config["sampler"]["batch_size"], verbose=0) for m in members]
    with np.errstate(divide="ignore"):
        return logits, keras.ops.convert_to_numpy(model.get_layer("vote")(logits))


def write_folder(output_dir, name: str, recipe: dict, metrics: dict, model: keras.Model, class_names) -> Path:
    """`<output_dir>/<name>/<id>/`, written under `.partial-<id>` and renamed when complete."""
    partial = Path(output_dir) / name / f"{export.PARTIAL_PREFIX}{export.new_run_id(recipe['seed'])}"
    partial.mkdir(parents=True)
    export.write_text(partial / "ensemble.toml", dump_config(recipe))
    export.write_json(partial / "metrics.json", metrics)
    model.save(partial / "model.keras")
    plots.plot_confusion_matrix(np.array(metrics["confusion_matrix"]), class_names,
                                partial / "plots" / "confusion_matrix.png", title=f"{name} ({recipe['vote']} vote)")
    if metrics.get("calibration", {}).get("fitted"):
        plots.plot_reliability(metrics["calibration"], partial / "plots" / "reliability.png")
    export.write_text(partial / "report.html", html_report.render(partial))
    return export.finalize(partial)


def export_ensemble(model: keras.Model, directory, class_names, decision=None) -> Path:
    """Write the ensemble as a TF SavedModel at `directory` (with its fitted `decision`, when it has
    one: `kseq.serving.decisions`), under a temporary name, then rename."""
    directory = Path(directory)
    if directory.exists():
        raise InputError(f"--export {directory}: already exists; refusing to overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = directory.with_name(f"{export.PARTIAL_PREFIX}{directory.name}-{secrets.token_hex(3)}")
    export.export_serving(model, partial, class_names, decision)
    os.rename(partial, directory)
    return directory


def read_named_ensemble(name_or_path: str) -> dict:
    """A named ensemble (`configs/ensembles/<name>.toml`) or TOML path -> {vote, members}."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        names = sorted(p.name[:-5] for p in ENSEMBLE_DIR.iterdir() if p.name.endswith(".toml"))
        if name_or_path not in names:
            raise InputError(f"unknown ensemble {name_or_path!r}; named ensembles: {', '.join(names)}")
        path = ENSEMBLE_DIR / f"{name_or_path}.toml"
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: {e}") from None
    if set(spec) - {"vote", "members"} or not isinstance(spec.get("members"), list):
        raise InputError(f"{path}: expected keys vote and members (a list); got {', '.join(sorted(spec))}")
    if spec.get("vote", "majority") not in VOTES:
        raise InputError(f"{path}: vote must be one of {', '.join(VOTES)}; got {spec['vote']!r}")
    return {"name": path.name.removesuffix(".toml"), "vote": spec.get("vote", "majority"), "members": spec["members"]}


def member_config(entry, overrides=(), seed=None, data_files=None) -> dict:
    """The config of a member to train: a name or TOML path, or a table {experiment, set}."""
    if isinstance(entry, dict):
        if set(entry) - {"experiment", "set"} or "experiment" not in entry:
            raise InputError(f"ensemble member {entry}: expected a table with experiment and optional set")
        entry, overrides = entry["experiment"], [*entry.get("set", []), *overrides]
    config = load_config(entry, overrides)
    if seed is not None:
        config["train"]["seed"] = seed
    return apply_data_files(config, **(data_files or {}))


def train_members(entries, output_dir, overrides=(), seed=None, data_files=None) -> list[Path]:
    """Train every member (after checking they can vote together) and return their run folders."""
    from kseq.training.trainer import train

    configs = [member_config(entry, overrides, seed, data_files) for entry in entries]
    if len(configs) < 2:
        raise InputError(f"an ensemble needs at least two members; got {len(configs)}")
    check_configs(configs, [c["experiment"]["name"] for c in configs])
    return [train(config, output_dir).directory for config in configs]


def format_table(ensemble: Ensemble) -> str:
    """Members and the ensemble side by side: accuracy, macro-F1 and balanced accuracy."""
    rows = [(f"{Path(m['directory']).parent.name}/{Path(m['directory']).name}", m["model"], m["metrics"])
            for m in ensemble.metrics["members"]]
    rows.append((f"ensemble ({ensemble.metrics['vote']} vote)", "", ensemble.metrics))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'member':<{width}}  {'model':<14} {'accuracy':>8} {'macro_f1':>8} {'balanced_accuracy':>17}"]
    lines += [f"{label:<{width}}  {model:<14} {m['accuracy']:>8.4f} {m['macro_f1']:>8.4f} "
              f"{m['balanced_accuracy']:>17.4f}" for label, model, m in rows]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kseq.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="finished run folders to vote")
    parser.add_argument("--train", nargs="+", metavar="EXPERIMENT", help="train these named experiments, then vote")
    parser.add_argument("--experiment", metavar="NAME",
                        help="a named ensemble (or its TOML file): train its members, then vote")
    parser.add_argument("--vote", choices=VOTES, help="majority (default) or soft")
    parser.add_argument("--data", help="training data: heartbeat CSV, pain features CSV or .npz")
    parser.add_argument("--labels", help="labels CSV for --data (pain format)")
    parser.add_argument("--test-data", help="test data in the same format as --data")
    parser.add_argument("--test-labels", help="labels CSV for --test-data (pain format)")
    parser.add_argument("--output-dir", default="saved_models", help="where run and ensemble folders go")
    parser.add_argument("--export", metavar="DIR", help="also write the ensemble as one TF SavedModel at DIR")
    parser.add_argument("--seed", type=int, help="seed of the members to train")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value of every member to train (repeatable)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Ensemble, Path | None]:
    """Resolve the members (training them if asked), evaluate the vote, write and export it."""
    sources = sum(map(bool, (args.runs, args.train, args.experiment)))
    if sources != 1:
        raise InputError("give run folders, --train EXPERIMENT [...] or --experiment NAME (exactly one)")
    if args.runs and (args.set or args.seed is not None):
        raise InputError("--set and --seed apply to members being trained (--train, --experiment), not run folders")
    if args.export and Path(args.export).exists():
        raise InputError(f"--export {args.export}: already exists; refusing to overwrite it")
    data_files = {"data": args.data, "labels": args.labels,
                  "test_data": args.test_data, "test_labels": args.test_labels}
    name, vote, runs = "ensemble", args.vote or "majority", args.runs
    if args.experiment:
        spec = read_named_ensemble(args.experiment)
        name, vote = spec["name"], args.vote or spec["vote"]
    if not runs:
        entries = spec["members"] if args.experiment else args.train
        runs = train_members(entries, args.output_dir, args.set, args.seed, data_files)
    ensemble = evaluate(load_members(runs), vote, args.output_dir, name, data_files)
    exported = (export_ensemble(ensemble.model, args.export, ensemble.metrics["class_names"], ensemble.decision)
                if args.export else None)
    return ensemble, exported


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ensemble, exported = run(args)
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(ensemble))
    print(f"ensemble folder: {ensemble.directory}")
    if exported:
        print(f"SavedModel: {exported}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

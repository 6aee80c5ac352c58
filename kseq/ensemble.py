"""Ensembles: finished runs vote, are evaluated side by side, and are served as one SavedModel.

The command line is `python -m kseq.cli.ensemble` (`kseq.cli.ensemble`); this module is the library.

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

import copy
import dataclasses
import functools
from pathlib import Path

import keras
import numpy as np

from kseq.config import VOTES, dump_config, load_config, read_run, with_data_files
from kseq.models.voting import VOTE_LAYERS
from kseq.reporting import evaluation, html_report, plots
from kseq.serving import decisions, export
from kseq.training import run_folder, trainer
from kseq.utils.errors import InputError
from kseq.utils.scores import softmax
from kseq.utils.files import new_folder, write_json, write_text



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
    config, class_names = read_run(directory)
    return Member(Path(directory), config, class_names, keras.saving.load_model(Path(directory) / "model.keras"))


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
    """Members must fill gaps alike and, unless test files are given, share `[data]` and seed.

    Not `data.validation_split`: the validation split is carved from the training split once the
    test split is fixed, so a network holding out a tenth and a random-kernel model holding out
    nothing are scored on the same test series (`unseen_validation` fits the decisions on what
    neither trained on)."""
    first, first_name = configs[0], names[0]
    for config, name in zip(configs[1:], names[1:]):
        if gap_filling(config) != gap_filling(first):
            raise InputError(f"member {name}: gap filling {gap_filling(config)} differs from "
                             f"{gap_filling(first)} of member {first_name}")
        if not same_test_split:
            continue
        for key in sorted((set(config["data"]) | set(first["data"])) - {"validation_split"}):
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
        if common_input_shape([first.model, member.model]) is None:
            raise InputError(f"member {member.directory}: input shape {member.model.input_shape[1:]} "
                             f"differs from {first.model.input_shape[1:]} of member {first.directory}")
        if member.class_names != first.class_names:
            raise InputError(f"member {member.directory}: class names {list(member.class_names)} "
                             f"differ from {list(first.class_names)} of member {first.directory}")
    check_configs([m.config for m in members], [str(m.directory) for m in members], same_test_split)


def common_input_shape(models: list[keras.Model]) -> tuple | None:
    """The `(T, F)` every member takes, or None where two disagree.

    A model that takes any length (`T` None: the convolutional models, which mask padding) agrees
    with every length; the ensemble takes a fixed length as soon as one member needs it.

    >>> a, b = keras.Input((None, 2)), keras.Input((50, 2))
    >>> common_input_shape([keras.Model(a, a), keras.Model(b, b)])
    (50, 2)
    """
    shape = list(models[0].input_shape[1:])
    for model in models[1:]:
        other = model.input_shape[1:]
        if len(other) != len(shape) or any(a is not None and b is not None and a != b for a, b in zip(shape, other)):
            return None
        shape = [a if a is not None else b for a, b in zip(shape, other)]
    return tuple(shape)


def build_ensemble(models: list[keras.Model], vote: str = "majority", name: str = "ensemble") -> keras.Model:
    """Raw sequences -> every member -> the vote, as one Functional model outputting log-probabilities."""
    if vote not in VOTE_LAYERS:
        raise InputError(f"vote: expected one of {', '.join(VOTES)}; got {vote!r}")
    shape = common_input_shape(models)
    if shape is None:
        raise InputError(f"members take different input shapes: {[m.input_shape[1:] for m in models]}")
    inputs = keras.Input(shape, name="sequence")
    outputs = VOTE_LAYERS[vote](name="vote")([model(inputs) for model in models])
    return keras.Model(inputs, outputs, name=name)


def evaluate(members: list[Member], vote: str = "majority", output_dir="saved_models", name: str = "ensemble",
             data_files: dict | None = None) -> Ensemble:
    """Evaluate every member and the vote on one test split and write the ensemble folder.

    `data_files` (keys data, labels, test_data, test_labels) replaces the members' test split.
    """
    from kseq.training.trainer import prepare_data

    data_files = data_files or {}
    check_members(members, same_test_split=not data_files.get("data"))
    configs = [with_data_files(copy.deepcopy(m.config), data_files) for m in members]
    config, every_split = configs[0], [prepare_data(c) for c in configs]
    val_set, test_set = unseen_validation(every_split), every_split[0].test
    shape = common_input_shape([m.model for m in members])
    fits = len(shape) == test_set.x.ndim - 1 and all(n is None or n == m for n, m in zip(shape, test_set.x.shape[1:]))
    if test_set.class_names != members[0].class_names or not fits:
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


def unseen_validation(every_split: list):
    """The validation series no member trained on: member 0's validation split, less every row of
    the training file another member's split put in its fit split (members trained with other
    seeds or validation fractions split the file differently), so the ensemble's decisions and
    temperature are fitted on data new to every member. None when no such series is left.
    """
    first = every_split[0]
    if first.validation is None:
        return None
    if any(s.fit_index is None for s in every_split):  # shards: split once on disk, the same for every member
        return first.validation
    rows = len(first.fit) + len(first.validation)  # a member without validation held nothing back
    held = [np.setdiff1d(np.arange(rows), s.fit_index) for s in every_split]
    unseen = functools.reduce(np.intersect1d, held)
    if not len(unseen):
        return None
    return first.validation.subset(np.searchsorted(held[0], unseen))


def vote_outputs(members: list[Member], model: keras.Model, x) -> tuple[list[np.ndarray], np.ndarray]:
    """Every member's logits on `x` and the ensemble's vote (log-probabilities, `model`'s output)."""
    logits = [trainer.predict_logits(m.model, x, m.config["sampler"]["batch_size"]) for m in members]
    with np.errstate(divide="ignore"):
        return logits, keras.ops.convert_to_numpy(model.get_layer("vote")(logits))


def write_folder(output_dir, name: str, recipe: dict, metrics: dict, model: keras.Model, class_names) -> Path:
    """`<output_dir>/<name>/<id>/`, written under `.partial-<id>` and renamed when complete."""
    partial = run_folder.partial_dir(output_dir, name, run_folder.new_run_id(recipe["seed"]))
    partial.mkdir(parents=True)
    write_text(partial / "ensemble.toml", dump_config(recipe))
    write_json(partial / "metrics.json", metrics)
    model.save(partial / "model.keras")
    plots.plot_confusion_matrix(np.array(metrics["confusion_matrix"]), class_names,
                                partial / "plots" / "confusion_matrix.png", title=f"{name} ({recipe['vote']} vote)")
    if metrics.get("calibration", {}).get("fitted"):
        plots.plot_reliability(metrics["calibration"], partial / "plots" / "reliability.png")
    write_text(partial / "report.html", html_report.render(partial))
    return run_folder.finalize(partial)


def export_ensemble(model: keras.Model, directory, class_names, decision=None) -> Path:
    """Write the ensemble as a TF SavedModel at `directory` (with its fitted `decision`, when it has
    one: `kseq.serving.decisions`), under a temporary name, then rename."""
    directory = Path(directory)
    if directory.exists():
        raise InputError(f"--export {directory}: already exists; refusing to overwrite it")
    with new_folder(directory) as partial:
        export.export_serving(model, partial, class_names, decision)
    return directory


def member_config(entry, overrides=(), seed=None, data_files=None) -> dict:
    """The config of a member to train: a name or TOML path, or a table {experiment, set}."""
    if isinstance(entry, dict):
        if set(entry) - {"experiment", "set"} or "experiment" not in entry:
            raise InputError(f"ensemble member {entry}: expected a table with experiment and optional set")
        entry, overrides = entry["experiment"], [*entry.get("set", []), *overrides]
    config = load_config(entry, overrides)
    if seed is not None:
        config["train"]["seed"] = seed
    return with_data_files(config, data_files or {})


def train_members(entries, output_dir, overrides=(), seed=None, data_files=None) -> list[Path]:
    """Train every member (after checking they can vote together) and return their run folders."""
    from kseq.training.trainer import train

    configs = [member_config(entry, overrides, seed, data_files) for entry in entries]
    if len(configs) < 2:
        raise InputError(f"an ensemble needs at least two members; got {len(configs)}")
    check_configs(configs, [c["experiment"]["name"] for c in configs])
    return [train(config, output_dir).directory for config in configs]

"""Experiment configs: named TOML files, defaults, `--set section.key=value` overrides.

A config is a plain nested dict with the sections below. Sections with fixed keys are checked
against `DEFAULTS`, so a typo in a TOML file or `--set` fails with the key's name rather than
being silently ignored, and their values are checked against the default's type and `CHOICES`
(`check_values`), all without importing TensorFlow, so bad input is answered at once. `[model]`,
`[loss]` and `[search]` are free-form: their keys are the builder's, the loss's and the search
space's own arguments. The keys in `kseq.training.recipe.AUTO_KEYS` may be `"auto"`: resolved from the
training set when a run starts (see `kseq.training.recipe`).
"""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path

import tomli_w

from kseq.utils.errors import InputError
from kseq.training.recipe import AUTO_KEYS, is_auto

DEFAULTS: dict = {
    "experiment": {"name": ""},
    "data": {
        "source": "synthetic_ecg",  # one of CHOICES["data", "source"]
        "path": "",
        "labels": "",
        "test_path": "",
        "test_labels": "",
        "scale": 1.0,
        "validation_split": 0.1,  # or "auto": 0.1 when it leaves enough series per class, else 0
        "test_split": 0.2,  # used only when a real training file comes without a test file
        "class_names": [],  # for CSV files: names of labels 0, 1, ...; empty: the loader's default
    },
    "preprocess": {
        "fill_gaps": "spline",  # spline | linear | none
        "spline_order": 3,
        "drop_constant": False,
        "correlation_threshold": 0.0,  # 0 disables
        "merge": {},
        "groups": "",  # "" none, "auto", or a table group -> [feature names]
        "window": 0,  # 0: whole sequences
        "stride": 0,
        # none | series (per-series z-normalisation) | channel (per-channel standardisation fitted on
        # the training set) | series+channel (both, concatenated) | auto (kseq.training.recipe); in the saved model
        "normalize": "none",
    },
    # kind: rejection | weighted | oversample (class-balanced batches, drawn with replacement) |
    # none | class_weight (in memory: each series once an epoch, shuffled; on shards: classes drawn
    # in proportion to their counts from per-class streams, so an epoch is a sample of the data
    # with replacement, not a permutation; class_weight adds the balanced weights).
    "sampler": {"kind": "rejection", "target": "uniform", "batch_size": 256},
    "model": {"name": "cnn"},
    "loss": {"name": "crossentropy"},
    "optimizer": {"name": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "schedule": "constant"},
    "train": {
        "epochs": 10,
        # 0: train `epochs`. A number or "auto": a budget of optimizer steps, rounded UP to whole
        # epochs (steps=40 at 12 steps an epoch trains 4 epochs, 48 steps); the resolved line and
        # config.toml give the steps actually taken.
        "steps": 0,
        "seed": 0,
        # 0, 1, 2, ...: another initialisation and batch order on the same data and split (the
        # members of an ensemble such as InceptionTime's five); 0 is the seed itself.
        "restart": 0,
        "monitor": "val_macro_f1",
        "early_stopping_patience": 4,
        # How much `monitor` must improve to count as an improvement for early stopping (Keras'
        # `EarlyStopping(min_delta=)`); ReduceLROnPlateau keeps Keras' own default, 1e-4.
        "min_delta": 0.0,
        "reduce_lr_patience": 2,
        "reduce_lr_factor": 0.5,
        "strategy": "default",  # default | mirrored | multi_worker
        "steps_per_execution": 1,
        "dtype_policy": "float32",  # float32 | mixed_bfloat16 (kseq.training.mixed_precision)
        # true: training steps compiled by XLA; "keras": Keras' own choice (XLA on a GPU for a model
        # whose layers it compiles, never on a CPU); false: never.
        "jit_compile": "keras",
        "verbose": "auto",
    },
    # Fitted on the validation split after training (kseq.serving.decisions); skipped without one.
    "decisions": {
        "thresholds": "macro_f1",  # macro_f1: per-class offsets maximising validation macro-F1 | none: argmax
        "recall_floor": {},  # class name -> minimum validation recall, e.g. {F = 0.95}
        "calibrate": True,  # temperature scaling (fitted on validation NLL)
        # Without a validation split: k >= 2 fits them on out-of-fold predictions of the training
        # split (k extra models, each trained as the run is on the other folds); 0 leaves the argmax.
        "folds": 0,
    },
    "search": {},
}
FREE_FORM = {"model", "loss", "search"}
# The accepted values of the fixed keys that name a choice.
CHOICES = {
    ("data", "source"): ("synthetic_ecg", "synthetic_pain", "heartbeat_csv", "pain_csv", "npz", "ts", "shards"),
    ("preprocess", "fill_gaps"): ("spline", "linear", "none"),
    ("preprocess", "normalize"): ("none", "series", "channel", "series+channel"),
    ("sampler", "kind"): ("none", "rejection", "weighted", "oversample", "class_weight"),
    ("optimizer", "name"): ("adamw",),
    ("optimizer", "schedule"): ("constant", "cosine"),
    ("train", "strategy"): ("default", "mirrored", "multi_worker"),
    ("train", "dtype_policy"): ("float32", "mixed_bfloat16"),
    ("train", "jit_compile"): ("keras",),  # or true / false
    ("decisions", "thresholds"): ("macro_f1", "none"),
}
# The ranges of the fixed numeric keys: (low, high, low_open, high_open, integer), None for no
# bound. A value out of range would train anyway and report a number (a validation split of 1.5
# keeps one series per class), or fail deep in TensorFlow (a batch size of 0).
RANGES = {
    ("data", "scale"): (0, None, True, False, False),
    ("data", "validation_split"): (0, 1, False, True, False),
    ("data", "test_split"): (0, 1, True, True, False),
    ("preprocess", "spline_order"): (1, 5, False, False, True),
    ("preprocess", "correlation_threshold"): (0, 1, False, False, False),
    ("preprocess", "window"): (0, None, False, False, True),
    ("preprocess", "stride"): (0, None, False, False, True),
    ("sampler", "batch_size"): (1, None, False, False, True),
    ("optimizer", "learning_rate"): (0, None, True, False, False),
    ("optimizer", "weight_decay"): (0, None, False, False, False),
    ("train", "epochs"): (1, None, False, False, True),
    ("train", "steps"): (0, None, False, False, True),
    ("train", "seed"): (0, 2**32 - 1, False, False, True),
    ("train", "restart"): (0, None, False, False, True),
    ("train", "early_stopping_patience"): (0, None, False, False, True),
    ("train", "min_delta"): (0, None, False, False, False),
    ("train", "reduce_lr_patience"): (0, None, False, False, True),
    ("train", "reduce_lr_factor"): (0, 1, True, True, False),
    ("train", "steps_per_execution"): (1, None, False, False, True),
    ("train", "verbose"): (0, 2, False, False, True),
}
# Fixed keys whose value may take another type than their default's.
_ALSO = {("preprocess", "groups"): dict, ("sampler", "target"): list, ("train", "verbose"): int,
         ("train", "jit_compile"): bool}
CONFIG_DIR = resources.files("kseq.experiments") / "configs"
ENSEMBLE_DIR = CONFIG_DIR / "ensembles"
RUN_FILES = ("config.toml", "model.keras", "metrics.json")  # what a finished run folder holds
VOTES = ("majority", "soft")  # kseq.models.voting.VOTE_LAYERS, named here so a command checks them before Keras loads


def experiment_names() -> list[str]:
    """The named experiments shipped in `kseq/experiments/configs/`."""
    return sorted(p.name[:-5] for p in CONFIG_DIR.iterdir() if p.name.endswith(".toml"))


def _read_toml(path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None


def merge_into(config: dict, updates: dict, source: str) -> dict:
    """Merge `updates` section by section into `config`, rejecting unknown sections and keys."""
    for section, values in updates.items():
        if section not in DEFAULTS:
            raise InputError(f"{source}: unknown section [{section}]; expected one of {', '.join(DEFAULTS)}")
        if not isinstance(values, dict):
            raise InputError(f"{source}: [{section}] must be a table")
        for key, value in values.items():
            if section not in FREE_FORM and key not in DEFAULTS[section]:
                known = ", ".join(DEFAULTS[section])
                raise InputError(f"{source}: unknown key {section}.{key}; expected one of {known}")
            config[section][key] = value
    return config


def _type_name(kind) -> str:
    return {bool: "true or false", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}[kind]


def _choice_names(section: str, key: str) -> str:
    """The values a choice key accepts, as an error names them: its `CHOICES`, and `true, false`
    where it also takes a boolean (`_ALSO`)."""
    return ", ".join([*CHOICES[section, key], *(["true", "false"] if _ALSO.get((section, key)) is bool else [])])


def check_values(config: dict, source: str = "config") -> None:
    """Reject a fixed key whose value has the wrong type or is not one of its `CHOICES`.

    `"auto"` is accepted for the keys of `kseq.training.recipe.AUTO_KEYS`. Numbers accept ints and floats
    alike; nothing else is converted.
    """
    for section, defaults in DEFAULTS.items():
        if section in FREE_FORM:
            continue
        for key, default in defaults.items():
            value = config[section][key]
            if is_auto(value) and key in AUTO_KEYS.get(section, ()):
                continue
            kinds = [type(default)] + ([_ALSO[section, key]] if (section, key) in _ALSO else [])
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                kinds += [int, float]
            if not any(isinstance(value, k) and not (isinstance(value, bool) and k is not bool) for k in kinds):
                expected = " or ".join(dict.fromkeys(_type_name(k) for k in kinds))
                if (section, key) in CHOICES:  # a choice: name its values (`train.jit_compile`'s booleans too)
                    expected = f"one of {_choice_names(section, key)}"
                if key in AUTO_KEYS.get(section, ()):
                    expected += ' or "auto"'
                raise InputError(f"{source}: {section}.{key} = {value!r}; expected {expected}")
            choices = CHOICES.get((section, key))
            if choices and isinstance(value, str) and value not in choices:
                expected = _choice_names(section, key)
                raise InputError(f"{source}: {section}.{key} = {value!r}; expected one of {expected}")
    _check_ranges(config, source)
    for key, value in config["model"].items():
        if is_auto(value) and key not in AUTO_KEYS["model"]:
            raise InputError(f"{source}: model.{key} cannot be \"auto\"; only {', '.join(AUTO_KEYS['model'])} can")


def _check_ranges(config: dict, source: str) -> None:
    """Reject a number outside its `RANGES` entry, and a window/stride pair that cannot slide."""
    for (section, key), (low, high, low_open, high_open, integer) in RANGES.items():
        value = config[section][key]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # "auto" or a type check_values already passed (train.verbose = "auto")
        if integer and value != int(value):
            raise InputError(f"{source}: {section}.{key} = {value!r}; expected a whole number")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or value != value:
            left = "" if low is None else f"{'>' if low_open else '>='} {low}"
            right = "" if high is None else f"{'<' if high_open else '<='} {high}"
            expected = " and ".join(part for part in (left, right) if part)
            raise InputError(f"{source}: {section}.{key} = {value!r}; expected a {'whole ' if integer else ''}"
                             f"number {expected}")
    window, stride = config["preprocess"]["window"], config["preprocess"]["stride"]
    if stride and not window:
        raise InputError(f"{source}: preprocess.stride = {stride} without preprocess.window; a stride needs a window")
    if window and stride > window:
        raise InputError(f"{source}: preprocess.stride = {stride} is larger than preprocess.window = {window}; "
                         "expected a stride <= the window, so that windows cover every step")


def infer_source(path: str, labels: str, default: str) -> str:
    """The `data.source` a `--data` file implies: by suffix (.npz, .ts), a CSV with a labels file
    (pain), or a heartbeat CSV; a config whose source is already a file format keeps it."""
    if Path(path).is_dir():
        return "shards"
    suffix = Path(path).suffix.lower()
    if suffix in (".npz", ".ts"):
        return suffix[1:]
    if labels:
        return "pain_csv"
    return {"synthetic_ecg": "heartbeat_csv", "synthetic_pain": "pain_csv"}.get(default, default)


def with_data_files(config: dict, files: dict) -> dict:
    """`config` with data files in its `[data]` section, as the command lines' `--data`, `--labels`,
    `--test-data` and `--test-labels` give them (`files` by those names, `test_data` for
    `--test-data`): the source is inferred from the training file, and without a test file the
    training file is split (`data.test_split`)."""
    if files.get("test_data") and not files.get("data"):
        raise InputError("--test-data needs --data (the training file)")
    if files.get("data"):
        config["data"].update(path=files["data"], labels=files.get("labels") or "",
                              source=infer_source(files["data"], files.get("labels"), config["data"]["source"]),
                              test_path=files.get("test_data") or "", test_labels=files.get("test_labels") or "")
    return config


def parse_override(text: str) -> tuple[str, str, object]:
    """`section.key=value` -> (section, key, value); the value is read as TOML, else as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise InputError(f"--set {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load_config(name_or_path: str, overrides=(), params: dict | None = None) -> dict:
    """Resolve a named experiment or TOML path, then apply `params` ({"section.key": value}) and overrides."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        if name_or_path not in experiment_names():
            raise InputError(
                f"unknown experiment {name_or_path!r}; named experiments: {', '.join(experiment_names())}"
            )
        path = CONFIG_DIR / f"{name_or_path}.toml"
    config = merge_into(copy.deepcopy(DEFAULTS), _read_toml(path), str(path))
    config["experiment"]["name"] = config["experiment"]["name"] or path.name.removesuffix(".toml")
    for dotted, value in (params or {}).items():
        section, _, key = dotted.partition(".")
        merge_into(config, {section: {key: value}}, "params")
    for text in overrides:
        section, key, value = parse_override(text)
        merge_into(config, {section: {key: value}}, f"--set {text}")
    check_values(config, str(path) if not overrides else f"{path} with --set")
    return config


def dump_config(config: dict) -> str:
    """The config as TOML text (what a run saves as `config.toml`)."""
    return tomli_w.dumps(config)


def ensemble_names() -> list[str]:
    """The named ensembles shipped in `kseq/experiments/configs/ensembles/`."""
    return sorted(p.name[:-5] for p in ENSEMBLE_DIR.iterdir() if p.name.endswith(".toml"))


def read_named_ensemble(name_or_path: str) -> dict:
    """A named ensemble (`configs/ensembles/<name>.toml`) or TOML path -> {vote, members}."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        names = ensemble_names()
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


def read_run(directory) -> tuple[dict, tuple[str, ...]]:
    """A finished run folder's config and class names, checked before any model is loaded."""
    directory = Path(directory)
    missing = [name for name in RUN_FILES if not (directory / name).is_file()]
    if missing:
        raise InputError(f"{directory}: not a run folder (no {', '.join(missing)})")
    try:
        class_names = tuple(json.loads((directory / "metrics.json").read_text())["class_names"])
    except (json.JSONDecodeError, KeyError) as e:
        raise InputError(f"{directory}: metrics.json has no readable class_names ({e})") from None
    return load_config(str(directory / "config.toml")), class_names


def check_tuning(trials: int, timeout: float | None, heartbeat: int, retries: int) -> None:
    """A tuning worker's trials, timeout, heartbeat and retries, in range (`kseq.tune.tune`;
    checked before Keras loads)."""
    if trials < 1:
        raise InputError("--trials must be at least 1")
    if timeout is not None and timeout <= 0:
        raise InputError("--timeout must be positive")
    if heartbeat < 1 or retries < 0:
        raise InputError("--heartbeat must be at least 1 and --retries at least 0")

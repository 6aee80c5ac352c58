"""Experiment configs: named TOML files, defaults, `--set section.key=value` overrides.

A config is a plain nested dict with the sections below. Sections with fixed keys are checked
against `DEFAULTS`, so a typo in a TOML file or `--set` fails with the key's name rather than
being silently ignored. `[model]`, `[loss]` and `[search]` are free-form: their keys are the
builder's, the loss's and the search space's own arguments.
"""

from __future__ import annotations

import copy
import sys
from importlib import resources
from pathlib import Path

import tomli_w

from kseq.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS: dict = {
    "experiment": {"name": ""},
    "data": {
        "source": "synthetic_ecg",  # synthetic_ecg | synthetic_pain | heartbeat_csv | pain_csv | npz
        "path": "",
        "labels": "",
        "test_path": "",
        "test_labels": "",
        "scale": 1.0,
        "validation_split": 0.1,
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
    },
    "sampler": {"kind": "rejection", "target": "uniform", "batch_size": 256},
    "model": {"name": "cnn"},
    "loss": {"name": "crossentropy"},
    "optimizer": {"name": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "schedule": "constant"},
    "train": {
        "epochs": 10,
        "seed": 0,
        "monitor": "val_macro_f1",
        "early_stopping_patience": 4,
        "reduce_lr_patience": 2,
        "reduce_lr_factor": 0.5,
        "strategy": "default",  # default | mirrored | multi_worker
        "steps_per_execution": 1,
        "verbose": "auto",
    },
    "search": {},
}
FREE_FORM = {"model", "loss", "search"}
CONFIG_DIR = resources.files("kseq.experiments") / "configs"


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
    return config


def dump_config(config: dict) -> str:
    """The config as TOML text (what a run saves as `config.toml`)."""
    return tomli_w.dumps(config)

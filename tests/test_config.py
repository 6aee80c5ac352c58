import pytest

from kseq.config import DEFAULTS, dump_config, experiment_names, load_config, parse_override
from kseq.utils.errors import InputError


def test_named_experiment_resolves_with_defaults():
    config = load_config("ecg_cnn")
    assert config["experiment"]["name"] == "ecg_cnn"
    assert config["model"]["name"] == "cnn"
    assert config["loss"]["name"] == "focal"
    assert set(config) == set(DEFAULTS)
    assert "ecg_cnn" in experiment_names()


def test_overrides_are_parsed_as_toml_values():
    config = load_config("ecg_cnn", ["train.epochs=3", "model.filters=[8, 16]", "sampler.kind=class_weight"])
    assert config["train"]["epochs"] == 3
    assert config["model"]["filters"] == [8, 16]
    assert config["sampler"]["kind"] == "class_weight"


def test_params_apply_before_overrides():
    config = load_config("ecg_cnn", ["model.dropout=0.7"], params={"model.dropout": 0.65, "train.seed": 4})
    assert config["model"]["dropout"] == 0.7
    assert config["train"]["seed"] == 4


def test_dump_then_load_round_trips(tmp_path):
    config = load_config("ecg_cnn", ["train.epochs=2"])
    path = tmp_path / "c.toml"
    path.write_text(dump_config(config))
    assert load_config(str(path)) == config


# Bad overrides and out-of-range values: tests/test_bad_input.py.


def test_unknown_experiment_lists_known_ones():
    with pytest.raises(InputError, match="unknown experiment 'nope'.*ecg_cnn"):
        load_config("nope")


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\nepochs = 1\n")
    with pytest.raises(InputError, match="bad.toml: not valid TOML"):
        load_config(str(path))


def test_parse_override_keeps_plain_strings():
    assert parse_override("loss.name=focal") == ("loss", "name", "focal")
    assert parse_override("data.scale=0.5") == ("data", "scale", 0.5)

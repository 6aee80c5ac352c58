"""Ensembles: the vote against NumPy, a tiny three-member ECG ensemble end to end, bad members."""

import json
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kseq import ensemble
from kseq.cli import ensemble as ensemble_cli
from kseq.config import VOTES, read_named_ensemble
from kseq.serving import export, runtime
from kseq.utils.errors import InputError
from kseq.models import build_model, voting
from tests.conftest import TINY_ECG


def majority_reference(p):
    """(M, N, C) member probabilities -> (decisions (N,), vote counts (N, C)), one row at a time."""
    num_members, n, num_classes = p.shape
    decisions, counts = np.zeros(n, dtype=int), np.zeros((n, num_classes))
    for i in range(n):
        counts[i] = np.bincount(p[:, i].argmax(axis=-1), minlength=num_classes)
        tied = np.flatnonzero(counts[i] == counts[i].max())
        decisions[i] = tied[np.argmax(p[:, i, tied].sum(axis=0))]
    return decisions, counts


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("num_members, num_classes", [(4, 3), (6, 3)])
def test_majority_vote_and_tie_break_match_numpy(num_members, num_classes):
    p = np.random.default_rng(num_members).dirichlet(np.ones(num_classes), size=(num_members, 500)).astype("float32")
    decisions, counts = majority_reference(p)
    top_ties = (counts == counts.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    assert top_ties.mean() > 0.2  # the vote is mostly decided by the tie-break here
    assert (decisions[top_ties] != counts[top_ties].argmax(axis=-1)).any()

    out = softmax(np.asarray(voting.MajorityVote()(list(np.log(p)))))
    winner = np.eye(num_classes)[decisions]
    expected = (counts + voting.TIE_BREAK_VOTE * winner) / (num_members + voting.TIE_BREAK_VOTE)
    np.testing.assert_array_equal(out.argmax(axis=-1), decisions)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert np.abs(out - counts / num_members).max() <= voting.TIE_BREAK_VOTE / num_members


def test_majority_vote_on_litert_matches_numpy(tmp_path):
    """The vote compiled for LiteRT (no argmax: see voting.first_max_one_hot) keeps its tie-break."""
    num_members, num_classes = 4, 3
    member_logits = keras.Input((num_members, num_classes), name="sequence")
    members = [keras.layers.Lambda(lambda z, m=m: z[:, m])(member_logits) for m in range(num_members)]
    export.export_serving(keras.Model(member_logits, voting.MajorityVote()(members)), tmp_path, ["a", "b", "c"])
    p = np.random.default_rng(4).dirichlet(np.ones(num_classes), size=(num_members, 500)).astype("float32")
    decisions, _ = majority_reference(p)
    out = runtime.ServingFunction(tmp_path, runtime="litert")(np.log(p).transpose(1, 0, 2))
    np.testing.assert_array_equal(out["class_id"], decisions)


def test_soft_vote_is_the_mean_probability():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, 64)).astype("float32")
    out = softmax(np.asarray(voting.SoftVote()(list(np.log(p)))))
    np.testing.assert_allclose(out, p.mean(axis=0), atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A named ensemble of three tiny CNNs (different kernels), trained, voted and exported via the CLI path."""
    root = tmp_path_factory.mktemp("ensemble")
    spec = root / "tiny_ensemble.toml"
    spec.write_text(textwrap.dedent("""
        vote = "majority"
        members = [
            "ecg_cnn",
            { experiment = "ecg_cnn", set = ["model.kernel_size=3"] },
            { experiment = "ecg_cnn", set = ["model.kernel_size=9", "model.pool_size=4"] },
        ]
    """))
    args = ensemble_cli.parse_args(["--experiment", str(spec), "--output-dir", str(root / "out"),
                                "--export", str(root / "export"), *(a for s in TINY_ECG for a in ("--set", s))])
    result, exported = ensemble_cli.run(args)
    return result, exported, root


def test_ensemble_folder_holds_the_vote_of_every_member_on_one_test_split(trained):
    result, _, root = trained
    assert result.directory.parent == root / "out" / "tiny_ensemble"
    assert sorted(p.name for p in result.directory.iterdir()) == [
        "ensemble.toml", "metrics.json", "model.keras", "plots", "report.html"]
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert len(metrics["members"]) == 3 and metrics["vote"] == "majority"

    decisions, _ = majority_reference(result.member_probabilities)
    np.testing.assert_array_equal(result.probabilities.argmax(axis=-1), decisions)
    assert metrics["accuracy"] == pytest.approx(np.mean(decisions == result.y_true))
    for member, p in zip(metrics["members"], result.member_probabilities):
        own = json.loads((root / member["directory"] / "metrics.json").read_text())
        assert member["metrics"]["accuracy"] == pytest.approx(np.mean(p.argmax(-1) == result.y_true))
        assert member["metrics"]["confusion_matrix"] == own["confusion_matrix"]  # the members' own test split
    assert ensemble_cli.format_table(result).splitlines()[-1].startswith("ensemble (majority vote)")

    reloaded = keras.saving.load_model(result.directory / "model.keras")
    x = np.random.default_rng(0).random((8, 187, 1), dtype=np.float32)
    np.testing.assert_allclose(softmax(reloaded.predict(x, verbose=0)), softmax(result.model.predict(x, verbose=0)), atol=1e-6)


def test_exported_savedmodel_matches_the_ensemble_in_a_tensorflow_only_process(trained, tmp_path):
    result, exported, _ = trained
    x = np.random.default_rng(1).random((32, 187, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    # TensorFlow 2.21 imports keras when it is installed; blocking it (and kseq) proves serving needs neither.
    script = textwrap.dedent(f"""
        import sys
        sys.modules["keras"] = sys.modules["kseq"] = None
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(exported)!r}).signatures["serving_default"]
        out = serve(sequence=tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        np.save({str(tmp_path / "p.npy")!r}, out["probabilities"].numpy())
        np.save({str(tmp_path / "c.npy")!r}, out["class_id"].numpy())
        print(" ".join(n.decode() for n in out["class_name"].numpy()))
        assert not any(name.split(".")[0] in ("keras", "kseq") for name, m in sys.modules.items() if m is not None)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = softmax(result.model.predict(x, verbose=0))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
    decided = tuned_decision(expected, result.metrics)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), decided)
    names = np.array(["N", "S", "V", "F", "Q"])
    assert done.stdout.split() == list(names[decided])
    assert not list(exported.parent.glob(".partial-*"))


def test_exported_litert_model_serves_the_ensemble(trained):
    result, exported, _ = trained
    serving = runtime.ServingFunction(exported, runtime="litert")
    x = np.random.default_rng(3).random((32, 187, 1), dtype=np.float32)
    expected = softmax(result.model.predict(x, verbose=0))
    out = serving(x)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"], tuned_decision(expected, result.metrics))


def tuned_decision(probabilities, metrics):
    """NumPy reference of the exported decision: argmax of log-probabilities plus the fitted offsets
    (a majority vote is not temperature-scaled)."""
    assert metrics["decisions"]["fitted"] and metrics["decisions"]["temperature"] == 1.0
    with np.errstate(divide="ignore"):
        return (np.log(probabilities) + list(metrics["decisions"]["offsets"].values())).argmax(-1)


def _other_class_names(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["class_names"] = ["A", "B", "C", "D", "E"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def _other_input_shape(run_dir):
    build_model("cnn", (100, 1), 5, filters=[4], dense_units=[4]).save(run_dir / "model.keras")


def _other_data(run_dir):
    text = (run_dir / "config.toml").read_text()
    (run_dir / "config.toml").write_text(text.replace("scale = 0.01", "scale = 0.02"))


@pytest.mark.parametrize("mutate, message", [
    (_other_class_names, "class names ['A', 'B', 'C', 'D', 'E'] differ"),
    (_other_input_shape, "input shape (100, 1) differs from (187, 1)"),
    (_other_data, "data.scale = 0.02 differs from 0.01"),
])
def test_mismatched_member_is_named_in_the_error(trained, tmp_path, mutate, message):
    result, _, root = trained
    good, other = (root / m["directory"] for m in result.metrics["members"][:2])
    bad = shutil.copytree(other, tmp_path / "bad_member")
    mutate(bad)
    args = ensemble_cli.parse_args([str(good), str(bad), "--output-dir", str(tmp_path / "out")])
    with pytest.raises(InputError, match=rf"member {bad}: ") as raised:
        ensemble_cli.run(args)
    assert message in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_members_holding_out_different_validation_splits_share_the_test_split():
    """A network (validation "auto") and a random-kernel model (0.0) vote together; they used to
    be refused for their differing `data.validation_split`, which does not move the test split."""
    from kseq.config import load_config

    configs = [load_config(name) for name in ("resnet", "minirocket")]
    assert configs[0]["data"]["validation_split"] != configs[1]["data"]["validation_split"]
    ensemble.check_configs(configs, ["resnet", "minirocket"])
    configs[1]["data"]["test_split"] = 0.3  # this one does
    with pytest.raises(InputError, match="member minirocket: data.test_split = 0.3 differs from 0.2"):
        ensemble.check_configs(configs, ["resnet", "minirocket"])


def test_export_never_overwrites(tmp_path):
    (tmp_path / "taken").mkdir()
    args = ensemble_cli.parse_args([str(tmp_path / "a"), str(tmp_path / "b"), "--export", str(tmp_path / "taken")])
    with pytest.raises(InputError, match="refusing to overwrite"):
        ensemble_cli.run(args)


@pytest.mark.parametrize("name", ["pain_ensemble", "ecg_ensemble"])
def test_named_ensembles_list_members_that_can_vote_together(name):
    spec = read_named_ensemble(name)
    configs = [ensemble.member_config(entry) for entry in spec["members"]]
    ensemble.check_configs(configs, [c["experiment"]["name"] for c in configs])
    assert spec["vote"] == "majority" and len({c["model"]["name"] for c in configs}) >= 3


def test_cli_rejects_a_folder_that_is_not_a_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kseq.cli.ensemble", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [done.stderr.strip().splitlines()[-1]] and "Traceback" not in done.stderr
    assert errors[0] == f"error: {tmp_path}: not a run folder (no config.toml, model.keras, metrics.json)"


def test_ensemble_report_renders_in_chromium(trained, tmp_path):
    from tests.browser import open_page

    result, _, root = trained
    text = (result.directory / "report.html").read_text()
    assert f"{result.metrics['macro_f1']:.4f}" in text
    assert all(m["directory"] in text for m in result.metrics["members"])
    assert "majority vote" in text and "Calibration: not fitted" in text
    seen = open_page(result.directory / "report.html", tmp_path / "ensemble.png")
    assert seen["errors"] == []
    assert len(seen["images"]) == 1 and seen["images"][0]["complete"] and seen["images"][0]["width"] > 100


def test_cli_loads_runs_whose_models_hold_kseq_objects(trained, tmp_path):
    """`python -m kseq.cli.ensemble RUN RUN`: the members' `.keras` files (FocalLoss, kseq layers) load."""
    result, _, _ = trained
    runs = [m["directory"] for m in result.metrics["members"][:2]]
    done = subprocess.run([sys.executable, "-m", "kseq.cli.ensemble", *runs, "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "ensemble").iterdir()
    assert f"ensemble folder: {folder}" in done.stdout


def test_the_votes_a_command_accepts_are_the_vote_layers():
    """`kseq.config.VOTES` (checked before Keras loads) names exactly the vote layers that exist."""
    assert set(VOTES) == set(voting.VOTE_LAYERS)


def test_members_of_any_length_vote_with_members_of_one_length():
    """A member that takes any length (T None) agrees with every length; two fixed lengths disagree."""
    def model(steps):
        inputs = keras.Input((steps, 2))
        return keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(inputs))

    assert ensemble.common_input_shape([model(None), model(None)]) == (None, 2)
    assert ensemble.common_input_shape([model(None), model(50), model(None)]) == (50, 2)
    assert ensemble.common_input_shape([model(50), model(60)]) is None
    with pytest.raises(InputError, match="members take different input shapes"):
        ensemble.build_ensemble([model(50), model(None), model(60)])
    assert ensemble.build_ensemble([model(None), model(50)]).input_shape == (None, 50, 2)


def test_ensemble_decisions_are_fitted_only_on_series_no_member_trained_on():
    """Members that split the training file differently: the validation rows left are held out by all."""
    from kseq.data.sequence_set import SequenceSet, Splits

    x, y = np.arange(20, dtype=np.float32).reshape(20, 1, 1), np.arange(20) % 2
    train = SequenceSet(x, y, ("a", "b"))

    def split(held):
        fit = np.setdiff1d(np.arange(20), held)
        return Splits(train.subset(fit), train.subset(np.sort(held)), None, None, fit)

    first, second = split(np.array([1, 4, 7, 9])), split(np.array([4, 9, 12]))
    unseen = ensemble.unseen_validation([first, second])
    np.testing.assert_array_equal(unseen.x[:, 0, 0], [4, 9])  # held out by both; 1 and 7 trained the second
    assert not set(unseen.x[:, 0, 0]) & (set(first.fit.x[:, 0, 0]) | set(second.fit.x[:, 0, 0]))
    assert ensemble.unseen_validation([first, split(np.array([], dtype=int))]) is None  # one member saw every row
    assert ensemble.unseen_validation([first]).x.shape == first.validation.x.shape

"""`report.html`: one self-contained page a person opens to read a run, an ensemble or a study.

Everything is in the file: figures are embedded as base64 PNG data URIs, styles inline, no
script and no network request, so the page renders the same from a laptop, a CI artifact or an
e-mail attachment. It is built from what the folder already holds (`metrics.json`, the config,
`plots/*.png`; for a tuning study its trials and plots), so it never disagrees with them.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

FIGURES = (
    ("confusion_matrix.png", "Confusion matrix (test split, argmax)"),
    ("training_curves.png", "Training curves"),
    ("reliability.png", "Calibration: reliability diagram (test split)"),
    ("saliency.png", "Saliency: what drove the decision"),
)
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.note { color: #555; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _table(header, rows) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt=\"{_e(caption)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _headline(metrics: dict) -> str:
    tuned = metrics.get("decisions", {})
    keys = ("accuracy", "macro_f1", "balanced_accuracy")
    if tuned.get("fitted"):
        rows = [(k, _number(metrics[k]), _number(tuned["test"][k])) for k in keys]
        table = _table(("test metric", "argmax", "tuned decision (served)"), rows)
    else:
        table = _table(("test metric", "argmax (served)"), [(k, _number(metrics[k])) for k in keys])
    calibration = metrics.get("calibration", {})
    if calibration.get("fitted"):
        table += _table(("calibration (test)", "before", f"after (T = {calibration['temperature']:.3g})"),
                        [("expected calibration error", _number(calibration["test_ece_before"]),
                          _number(calibration["test_ece_after"]))])
    if "decisions" in metrics and not tuned.get("fitted"):
        table += f"<p class=\"note\">Decision thresholds and calibration: not fitted ({_e(tuned['reason'])}).</p>"
    elif "calibration" in metrics and not calibration.get("fitted"):
        table += f"<p class=\"note\">Calibration: not fitted ({_e(calibration['reason'])}).</p>"
    elif tuned.get("fitted"):
        offsets = ", ".join(f"{name} {b:+.3f}" for name, b in tuned["offsets"].items())
        table += (f"<p class=\"note\">Decision fitted on the {_e(tuned['fitted_on'])}: temperature "
                  f"{tuned['temperature']:.3g}; offsets on log-probabilities {_e(offsets)}; validation macro-F1 "
                  f"{tuned['validation']['macro_f1_argmax']:.4f} (argmax) -> "
                  f"{tuned['validation']['macro_f1_tuned_in_sample']:.4f} (tuned; in-sample: the offsets were "
                  "chosen on these series).</p>")
        if tuned.get("offsets_skipped"):
            table += f"<p class=\"note\">Offsets not fitted: {_e(tuned['offsets_skipped'])}.</p>"
    return table


def _per_class(metrics: dict) -> str:
    tuned = metrics.get("decisions", {}).get("test") if metrics.get("decisions", {}).get("fitted") else None
    header = ["class", "support", "precision", "recall", "F1"]
    if tuned:
        header += ["precision (tuned)", "recall (tuned)", "F1 (tuned)"]
    rows = []
    for name, scores in metrics["per_class"].items():
        row = [name, scores["support"], *(_number(scores[k]) for k in ("precision", "recall", "f1"))]
        if tuned:
            row += [_number(tuned["per_class"][name][k]) for k in ("precision", "recall", "f1")]
        rows.append(row)
    return _table(header, rows)


def _confusion(matrix, class_names) -> str:
    return _table(["true \\ predicted", *class_names], [[n, *row] for n, row in zip(class_names, matrix)])


def _members(metrics: dict) -> str:
    rows = [(m["directory"], m["model"], *(_number(m["metrics"][k]) for k in ("accuracy", "macro_f1",
                                                                                "balanced_accuracy")))
            for m in metrics.get("members", [])]
    return _table(("member run", "model", "accuracy", "macro_f1", "balanced_accuracy"), rows)


def _serving(folder: Path) -> str:
    serving = folder / "serving"
    return f"""<pre>
# Python, with kseq installed (the fastest runtime the export holds: XLA, LiteRT or TensorFlow)
from kseq.serving.runtime import ServingFunction, configure_threads
configure_threads("serve")   # first, before TensorFlow runs: one core per request
serve = ServingFunction("{_e(serving)}")
out = serve(x)   # x: float32 (N, T, F); out["probabilities"], out["class_id"], out["class_name"]

# TensorFlow alone
import tensorflow as tf
fn = tf.saved_model.load("{_e(serving)}").signatures["serving_default"]
out = fn(sequence=tf.constant(x))

# TensorFlow Serving
docker run -p 8501:8501 -v "{_e(serving)}:/models/kseq/1" -e MODEL_NAME=kseq tensorflow/serving
</pre>
<p class="note">The served <code>class_id</code> is the decision tuned on the validation split when
one was fitted (above); <code>model.keras</code> is the raw model (logits out).</p>"""


def render(folder) -> str:
    """The HTML of a run or ensemble folder (`metrics.json`, `config.toml` or `ensemble.toml`, `plots/`)."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    config_file = next(p for p in (folder / "config.toml", folder / "ensemble.toml") if p.is_file())
    is_ensemble = config_file.name == "ensemble.toml"
    title = f"{'ensemble' if is_ensemble else 'run'} {folder.parent.name}/{folder.name.removeprefix('.partial-')}"
    parts = [f"<h1>{_e(title)}</h1>", "<h2>Headline (test split)</h2>", _headline(metrics)]
    if is_ensemble:
        parts += [f"<h2>Members ({_e(metrics.get('vote', ''))} vote)</h2>", _members(metrics)]
    parts += ["<h2>Per class</h2>", _per_class(metrics), "<h2>Confusion matrix (argmax)</h2>",
              _confusion(metrics["confusion_matrix"], metrics["class_names"])]
    if metrics.get("decisions", {}).get("fitted"):
        parts += ["<h2>Confusion matrix (tuned decision)</h2>",
                  _confusion(metrics["decisions"]["test"]["confusion_matrix"], metrics["class_names"])]
    timing = [(k, f"{metrics[k]:.4g}") for k in ("epochs", "train_seconds", "train_samples_per_second")
              if k in metrics]
    if timing:
        parts += ["<h2>Training</h2>", _table(("quantity", "value"), timing)]
    parts += ["<h2>Figures</h2>"]
    parts += [_figure(folder / "plots" / name, caption) for name, caption in FIGURES
              if (folder / "plots" / name).is_file()]
    parts += [f"<h2>Resolved config ({_e(config_file.name)})</h2>", f"<pre>{_e(config_file.read_text())}</pre>"]
    if is_ensemble:
        parts += ["<h2>How to serve</h2>",
                  "<p><code>python -m kseq.cli.ensemble RUN_DIR RUN_DIR ... --export DIR</code> "
                  "writes this ensemble as one SavedModel (with <code>model.tflite</code> where it converts), "
                  "served like a run's <code>serving/</code> folder.</p>"]
    else:
        parts += ["<h2>How to serve</h2>", _serving(folder.with_name(folder.name.removeprefix(".partial-")))]
    return _page(title, parts)


def render_study(folder, name: str, trials, best: dict | None) -> str:
    """The HTML of a tuning study's summary folder (`kseq.tune.write_summary`).

    `trials` is Optuna's `trials_dataframe()` (a pandas DataFrame); `best` the best trial's
    `value`, `number`, `params` and `run_dir`, or None before any trial completed.
    """
    folder = Path(folder)
    title = f"tuning study {name}"
    parts = [f"<h1>{_e(title)}</h1>", "<h2>Best trial</h2>"]
    if best is None:
        parts.append("<p class=\"note\">No trial has completed yet.</p>")
    else:
        parts.append(_table(("", "value"), [("validation macro-F1", _number(best["value"])),
                                             ("trial", best["number"]), ("run folder", best["run_dir"]),
                                             *((f"param {k}", v) for k, v in best["params"].items())]))
        parts.append("<p>Retrain with them: <code>python -m kseq.experiments.run EXPERIMENT --params "
                     f"{_e(folder / 'best_params.json')}</code>; each trial's run folder has its own "
                     "<code>report.html</code>.</p>")
    columns = [c for c in trials.columns if c in ("number", "state", "value") or c.startswith("params_")
               or c == "user_attrs_run_dir"]
    rows = [[_number(v) if c == "value" and v == v else v for c, v in zip(columns, row)]
            for row in trials[columns].itertuples(index=False)]
    parts += [f"<h2>Trials ({len(trials)})</h2>", _table([c.removeprefix("params_") for c in columns], rows)]
    figures = (("optimization_history.png", "Optimization history"), ("param_importances.png", "Parameter importances"))
    parts += [_figure(folder / f, caption) for f, caption in figures if (folder / f).is_file()]
    return _page(title, parts)


def _page(title: str, parts) -> str:
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")

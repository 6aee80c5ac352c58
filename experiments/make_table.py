"""Print the results table of experiments/README.md from the newest run of each experiment.

Usage: python experiments/make_table.py [saved_models]
"""

import json
import sys
import tomllib
from pathlib import Path

MINORITIES = ("S", "F", "high_pain")


def newest(experiment_dir: Path) -> Path | None:
    runs = sorted(p for p in experiment_dir.iterdir() if (p / "metrics.json").exists())
    return runs[-1] if runs else None


def minority_recall(metrics: dict) -> str:
    return ", ".join(f"{c} {v['recall']:.2f}" for c, v in metrics["per_class"].items() if c in MINORITIES)


def run_row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    config = tomllib.loads((run / "config.toml").read_text())
    name = config["experiment"]["name"]
    return (
        f"| `{name}` | {config['model']['name']} | {config['data']['scale']:g} | {metrics['accuracy']:.4f} "
        f"| {metrics['macro_f1']:.4f} | {minority_recall(metrics)} | {metrics['epochs']} "
        f"| {metrics['train_seconds']:.0f} s | `python -m kseq.experiments.run {name}` |"
    )


def ensemble_row(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    recipe = tomllib.loads((folder / "ensemble.toml").read_text())
    members = [Path(m).parent.name for m in recipe["members"]]
    command = "python -m kseq.cli.ensemble " + " ".join(f"saved_models/{m}/<run-id>" for m in members)
    return (
        f"| ensemble ({recipe['vote']}) of {', '.join(f'`{m}`' for m in members)} | vote | "
        f"{recipe['data']['scale']:g} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} "
        f"| {minority_recall(metrics)} | - | - | `{command}` |"
    )


def main(root="saved_models") -> None:
    print("| experiment | model | data.scale | test accuracy | test macro-F1 | minority recall | epochs | training time | command |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        latest = newest(folder)
        if latest is None:
            continue
        print(ensemble_row(latest) if (latest / "ensemble.toml").exists() else run_row(latest))


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Print the results table of experiments/README.md from the newest run of each experiment.

Usage: python experiments/make_table.py [saved_models]
"""

import json
import sys
import tomllib
from pathlib import Path


def newest_run(experiment_dir: Path) -> Path | None:
    runs = sorted(p for p in experiment_dir.iterdir() if (p / "metrics.json").exists())
    return runs[-1] if runs else None


def row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    config = tomllib.loads((run / "config.toml").read_text())
    name = config["experiment"]["name"]
    scale = config["data"]["scale"]
    command = f"python -m kseq.experiments.run {name}"
    minority = ", ".join(f"{c} {v['recall']:.2f}" for c, v in metrics["per_class"].items() if c in ("S", "F", "high_pain"))
    return (
        f"| `{name}` | {config['model']['name']} | {scale:g} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} "
        f"| {minority} | {metrics['epochs']} | {metrics['train_seconds']:.0f} s | `{command}` |"
    )


def main(root="saved_models") -> None:
    print("| experiment | model | data.scale | test accuracy | test macro-F1 | minority recall | epochs | training time | command |")
    print("|---|---|---|---|---|---|---|---|---|")
    for experiment_dir in sorted(Path(root).iterdir()):
        run = newest_run(experiment_dir) if experiment_dir.is_dir() else None
        if run is not None and (run / "config.toml").exists():
            print(row(run))


if __name__ == "__main__":
    main(*sys.argv[1:])

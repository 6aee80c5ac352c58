"""The seed's heartbeat CNN in PyTorch, the torch half of `vs_pytorch.py --model cnn` (kseq: `ecg_cnn`).

Conv1d 1->32 k5 same + ReLU, Conv1d 32->64 k5 same + ReLU, MaxPool 2, Flatten, Dense 128 ReLU +
Dropout, Dense 64 ReLU + Dropout, Dense logits: `kseq.build_model("cnn", ...)` with ecg_cnn's
hyperparameters.
"""

from __future__ import annotations

import numpy as np

EXPERIMENTS = {"cnn": "ecg_cnn"}


def layout(x: np.ndarray) -> np.ndarray:
    """(N, T, F) as Conv1d takes it: (N, F, T)."""
    return np.ascontiguousarray(x.transpose(0, 2, 1))


def network(args: dict, steps: int, features: int, num_classes: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv1d(features, 32, 5, padding="same"), nn.ReLU(),
        nn.Conv1d(32, 64, 5, padding="same"), nn.ReLU(),
        nn.MaxPool1d(2), nn.Flatten(),
        nn.Linear(64 * (steps // 2), 128), nn.ReLU(), nn.Dropout(0.6),
        nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.6),
        nn.Linear(64, num_classes),
    )


def sequence_model(torch, model, args: dict):
    """Whole beats go straight through the network."""
    return model

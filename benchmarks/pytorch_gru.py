"""GRU stacks in PyTorch, the torch half of `vs_pytorch.py --model gru` (kseq: `ecg_gru`, 2 x 32
bidirectional GRU over a beat's 187 steps) and `--model bigru` (`pain_bigru`, 3 x 100 bidirectional
GRU on sliding windows of 40 steps, stride 20, each sequence's logits the mean of its windows').

`nn.GRU` with the experiment's layers, the same dropout on every layer's inputs, the last step of
both directions into one linear layer: `kseq.build_model("rnn", cell="gru", ...)`.
"""

from __future__ import annotations

import numpy as np

EXPERIMENTS = {"gru": "ecg_gru", "bigru": "pain_bigru"}


def layout(x: np.ndarray) -> np.ndarray:
    """(N, T, F), as batch-first GRUs take it."""
    return np.ascontiguousarray(x)


def network(args: dict, steps: int, features: int, num_classes: int):
    return torch_gru(features, num_classes, **args["rnn"])


def torch_gru(features: int, num_classes: int, *, units: int, layers: int, bidirectional: bool, dropout: float):
    """`kseq.build_model("rnn", cell="gru", ...)` in torch: dropout on every layer's inputs, the last
    step of both directions, one linear layer to the logits."""
    import torch
    from torch import nn

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_dropout = nn.Dropout(dropout)
            self.gru = nn.GRU(features, units, layers, batch_first=True, bidirectional=bidirectional,
                              dropout=dropout if layers > 1 else 0.0)
            self.directions = 2 if bidirectional else 1
            self.head = nn.Linear(units * self.directions, num_classes)

        def forward(self, x):
            _, last = self.gru(self.input_dropout(x))  # (layers * directions, N, units)
            return self.head(torch.cat(list(last[-self.directions:]), dim=-1))

    return GRUClassifier()


def sequence_model(torch, model, args: dict):
    """`model` on whole sequences: windowed models (`preprocess.window`) averaged over their windows,
    folded into the batch as kseq's `sequence_classifier` does."""
    window, stride = args["window"], args["stride"]
    if not window:
        return model

    def call(x):  # (B, T, F)
        windows = x.unfold(1, window, stride).transpose(2, 3)  # (B, W, window, F)
        b, w = windows.shape[:2]
        return model(windows.reshape(b * w, window, x.shape[2])).reshape(b, w, -1).mean(1)

    return call

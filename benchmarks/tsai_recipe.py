"""tsai's README recipe on one dev set, run by `benchmarks/vs_tsai.py` with tsai's own Python.

The README's univariate classification recipe, unchanged but for its data and two choices:
`TSClassifier(X, y, arch="InceptionTimePlus", tfms=[None, TSClassification()],
batch_tfms=TSStandardize(), metrics=accuracy)`, `fit_one_cycle(100, 3e-4)`, `export`, then
`get_X_preds` on the test split. The README passes the test split as fastai's validation set,
which `fit_one_cycle` scores after every epoch without training on it or selecting by it; here
the learner gets the training split alone (no validation set), so tsai's time does not pay for
100 passes over the test split that kseq's run does not make. The test split is predicted once,
at the end, and scored here as kseq scores it (`kseq.reporting.evaluation`: macro-F1 over every
class, absent ones 0). Seeded with fastai's `set_seed(0)`; torch on 2 threads, the benchmark's
2 cores. Its own README gives multivariate sets `TSStandardize(by_sample=True)` and 10 epochs at
1e-2; the issue names one recipe for every set, so WatchExercise gets this one too.

    /work/tsai-venv/bin/python benchmarks/tsai_recipe.py DATA.npz [--epochs 100]

Prints fastai's epoch records (its progress bars are off), then one JSON line: {"accuracy", "macro_f1"}.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a kseq .npz: x_train (N, T, F), y_train, x_test, y_test, class_names")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()

    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from tsai.basics import TSClassification, TSClassifier, TSStandardize, accuracy, set_seed

    torch.set_num_threads(2)
    data = np.load(args.data)
    x_train, x_test = (np.ascontiguousarray(data[k].transpose(0, 2, 1)) for k in ("x_train", "x_test"))  # (N, C, T)
    set_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        learn = TSClassifier(x_train, data["y_train"], path=folder, arch="InceptionTimePlus",
                             tfms=[None, TSClassification()], batch_tfms=TSStandardize(), metrics=accuracy)
        with learn.no_bar():  # fastai's console progress bars, which would garble the JSON line
            learn.fit_one_cycle(args.epochs, 3e-4)
            learn.export("clf.pkl")
            # One batch: with numpy 2, fastai's loader cuts a split of more than one batch into an empty
            # last batch, which InceptionTimePlus cannot reshape (Trace: 100 test series, batches of 64).
            probabilities, _, _ = learn.get_X_preds(x_test, bs=len(x_test))
    predicted = np.asarray(learn.dls.vocab)[np.asarray(probabilities).argmax(axis=1)]
    labels = np.arange(len(data["class_names"]))
    print(json.dumps({"accuracy": float(accuracy_score(data["y_test"], predicted)),
                      "macro_f1": float(f1_score(data["y_test"], predicted, labels=labels, average="macro",
                                                 zero_division=0))}))


if __name__ == "__main__":
    main()

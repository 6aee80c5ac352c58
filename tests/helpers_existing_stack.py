"""Run in a fresh process: load a .keras file with kseq imported and no custom_objects, predict.

Usage: python helpers_existing_stack.py MODEL.keras INPUTS.npy OUTPUTS.npy
Prints the restored loss class and the names evaluate reports, so the caller can check compile state.
"""

import sys

import keras
import numpy as np

import kseq  # noqa: F401  (registers kseq's serializable objects)

model_path, inputs_path, outputs_path = sys.argv[1:]
model = keras.saving.load_model(model_path)
x = np.load(inputs_path)
np.save(outputs_path, model.predict(x, verbose=0))
scores = model.evaluate(x, np.zeros(len(x), "int64"), return_dict=True, verbose=0)
print("loss:", type(model.loss).__name__)
print("metrics:", *sorted(scores))

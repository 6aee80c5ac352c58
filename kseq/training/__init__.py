"""Training: `trainer.train(config) -> Run` orchestrates data, model, fit and the run folder; `recipe`
resolves a generic experiment's "auto" values from the training set; `distribute` holds the
multi-worker rules (who is chief, where each worker keeps its state).

The package itself imports nothing, so `kseq.config` can read the recipe's keys without loading
TensorFlow.
"""

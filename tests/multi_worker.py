"""One worker of the two-process multi-worker tests: `python -m tests.multi_worker TASK_INDEX OUT_DIR PORTS ...`.

Trains the tiny heartbeat experiment under `train.strategy = "multi_worker"` with the cluster of
the given loopback ports, then writes what the tests compare to `OUT_DIR/worker<index>.npz`: the
trained weights, and the indices of the sequences this worker's replica was given at each step
of the first epoch (from the same sampler stream fed through the same strategy, with each
sequence's index in place of its features), in memory and from shards.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv):
    index, out_dir, ports, extra = int(argv[0]), argv[1], argv[2].split(","), argv[3:]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })
    import keras
    import numpy as np

    from kseq.training import trainer
    from kseq.config import load_config
    from kseq.data.pipeline import make_train_dataset
    from tests.conftest import TINY_ECG

    resume = "--resume" in extra
    hang = "--hang-after-epoch0" in extra
    overrides = [o for o in extra if not o.startswith("--")]
    config = load_config("ecg_cnn", [*TINY_ECG, "train.strategy=multi_worker", *overrides])

    class HangAfterFirstEpoch(keras.callbacks.Callback):
        """Says epoch 0 is saved, then blocks until killed: a worker lost mid-training."""

        def on_epoch_end(self, epoch, logs=None):
            print("epoch", epoch, "saved", flush=True)
            sys.stdin.readline()

    callbacks = [HangAfterFirstEpoch()] if hang else []
    state = None
    if resume:
        from kseq.training import distribute
        from kseq.training import run_folder

        state = distribute.latest_state(f"{out_dir}/runs", "ecg_cnn", config, run_folder.latest_partial)
    run = trainer.train(config, f"{out_dir}/runs", resume=state, callbacks=callbacks)

    fit_set = trainer.prepare_data(run.config).fit
    strategy = trainer.make_strategy("multi_worker")
    ids = np.arange(len(fit_set.y), dtype=np.float32).reshape(-1, 1, 1)
    batch_size = run.config["sampler"]["batch_size"]
    stream = make_train_dataset(ids, fit_set.y, batch_size=batch_size, seed=run.config["train"]["seed"],
                                epochs=1)
    seen = [strategy.experimental_local_results(x)[0].numpy().ravel().astype(np.int64)
            for x, _ in strategy.experimental_distribute_dataset(stream)]
    # The same from shards, as `trainer.fit` streams them: each worker's input pipeline reads its own files.
    from kseq.data import SequenceSet, write_shards
    from kseq.data.shards import open_split

    id_set = SequenceSet(ids, fit_set.y, fit_set.class_names)
    split = open_split(write_shards(f"{out_dir}/id-shards-{index}", id_set, validation_split=0, seed=0,
                                    records_per_shard=50), "train")
    shard_stream = strategy.distribute_datasets_from_function(lambda context: make_train_dataset(
        split.x, split.y, batch_size=batch_size, seed=0, epochs=1, input_context=context))
    shard_seen = [[strategy.experimental_local_results(part)[0].numpy().ravel().astype(np.int64) for part in batch]
                  for batch in shard_stream]
    np.savez(f"{out_dir}/worker{index}.npz", *run.model.get_weights(),
             seen=np.stack(seen), shard_ids=np.stack([x for x, _ in shard_seen]),
             shard_labels=np.stack([y for _, y in shard_seen]), directory=str(run.directory),
             epochs=run.history["epoch"])
    print("worker", index, "done", run.directory, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

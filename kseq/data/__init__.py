"""Data in: loaders, the embedded generators, preprocessing and tf.data pipelines."""

from kseq.data.sequence_set import SequenceSet

__all__ = ["SequenceSet"]

from kseq.data.sources import load_heartbeat_csv, load_npz, load_pain_csv, load_ts  # noqa: E402
from kseq.data.synthetic import make_heartbeats, make_pain  # noqa: E402


def write_shards(*args, **kwargs):
    """`kseq.data.shards.write_shards` (imported on use: it needs TensorFlow)."""
    from kseq.data.shards import write_shards as write

    return write(*args, **kwargs)

__all__ += ["load_heartbeat_csv", "load_npz", "load_pain_csv", "load_ts", "make_heartbeats", "make_pain",
            "write_shards"]

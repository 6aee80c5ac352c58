"""Data in: loaders, the embedded generators, preprocessing and tf.data pipelines."""

from kseq.data.sequence_set import SequenceSet

__all__ = ["SequenceSet"]

from kseq.data.sources import load_heartbeat_csv, load_npz, load_pain_csv, load_ts  # noqa: E402
from kseq.data.synthetic import make_heartbeats, make_pain  # noqa: E402

__all__ += ["load_heartbeat_csv", "load_npz", "load_pain_csv", "load_ts", "make_heartbeats", "make_pain"]

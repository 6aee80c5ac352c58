"""Data in: loaders, the embedded generators, preprocessing and tf.data pipelines."""

from kseq.data.sequence_set import SequenceSet

__all__ = ["SequenceSet"]

"""Vote layers that combine ensemble members' logits into one prediction (see `kseq.ensemble`)."""

from __future__ import annotations

import keras
from keras import layers, ops

# Extra vote given to the tie-break winner in the majority vote's output, so argmax names it.
TIE_BREAK_VOTE = 1e-3


class Vote(layers.Layer):
    """A list of M member logits (B, C) -> ensemble log-probabilities (B, C).

    Log-probabilities are logits, so an ensemble model is used like any kseq model: softmax of
    its output gives the ensemble's probabilities.
    """

    def call(self, member_logits):
        probabilities = ops.softmax(ops.stack(member_logits, axis=1), axis=-1)
        return ops.log(self.combine(probabilities))

    def combine(self, probabilities):
        """Member probabilities (B, M, C) -> ensemble probabilities (B, C)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="kseq")
class SoftVote(Vote):
    """The mean of the members' probabilities."""

    def combine(self, probabilities):
        return ops.mean(probabilities, axis=1)


@keras.saving.register_keras_serializable(package="kseq")
class MajorityVote(Vote):
    """Vote shares: each member votes its argmax; ties go to the highest summed probability.

    The output is `(votes + 0.001 * [class == winner]) / (M + 0.001)`: the vote shares, with the
    tie-break winner given a thousandth of a vote so that argmax always names the decision.
    """

    def combine(self, probabilities):
        num_members = probabilities.shape[1]
        votes = ops.sum(first_max_one_hot(probabilities), axis=1)
        tied = ops.equal(votes, ops.max(votes, axis=-1, keepdims=True))
        summed = ops.sum(probabilities, axis=1)  # >= 0, so -1 rules out the classes not tied
        winner = first_max_one_hot(ops.where(tied, summed, -ops.ones_like(summed)))
        return (votes + TIE_BREAK_VOTE * winner) / (num_members + TIE_BREAK_VOTE)


def first_max_one_hot(x):
    """`one_hot(argmax(x, -1))` (the first index on ties), from comparisons and a cumulative sum.

    Keras' float argmax guards against negative zeros with a bitwise op that LiteRT lacks; this
    form converts, so a CNN ensemble's export gets its `model.tflite` too.
    """
    is_max = ops.cast(ops.equal(x, ops.max(x, axis=-1, keepdims=True)), x.dtype)
    return is_max * ops.cast(ops.equal(ops.cumsum(is_max, axis=-1), 1), x.dtype)


VOTE_LAYERS = {"majority": MajorityVote, "soft": SoftVote}

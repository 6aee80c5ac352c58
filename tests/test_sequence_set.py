import numpy as np
import pytest

from kseq.data.sequence_set import SequenceSet


def test_univariate_becomes_one_feature_and_dtypes_are_fixed():
    data = SequenceSet(x=np.zeros((3, 5), np.float64), y=[0, 1, 1], class_names=["a", "b"])
    assert data.x.shape == (3, 5, 1) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.class_names == ("a", "b")


def test_subset_keeps_names_and_lengths():
    data = SequenceSet(x=np.arange(12.0).reshape(3, 4), y=[0, 1, 0], class_names=("a", "b"),
                       lengths=np.array([4, 2, 3]), feature_names=("v",))
    part = data.subset([2, 0])
    assert part.x[:, 0, 0].tolist() == [8.0, 0.0] and part.lengths.tolist() == [3, 4]
    assert part.feature_names == ("v",) and len(part) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x=np.zeros((2, 3, 1, 1)), y=[0, 0]), "x must be"),
        (dict(x=np.zeros((2, 3)), y=[0]), "y must have shape"),
        (dict(x=np.zeros((2, 3)), y=[0, 2]), "labels must lie in"),
        (dict(x=np.zeros((2, 3)), y=[0, 1], feature_names=("a", "b")), "2 feature names for 1 features"),
    ],
)
def test_inconsistent_arrays_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SequenceSet(class_names=("a", "b"), **kwargs)


def test_minus_one_marks_unlabelled():
    assert SequenceSet(x=np.zeros((2, 3)), y=[-1, -1], class_names=("a", "b")).y.tolist() == [-1, -1]
